//! Room recording: a room's messages written to files as they reach
//! history, per sender (`individual`) or for the whole room (`mix`).
//!
//! Recording reads the durable history (`Engine::history_after`: the local
//! store, or on the redis engine the room's stream in Redis), never the send
//! path: a send costs the same recorded or not, and a recording holds
//! exactly what history holds. One thread (`runner.rs`) makes a pass over
//! the running recordings every `recording.poll_ms`: it applies their
//! lifecycle (idle, length, the room's release, a stop), appends the new
//! messages to their slices (`files.rs`), syncs them, then saves each
//! recording's progress (`<root>/.active/<sid>.json`). A restart reads
//! those back and goes on from the saved history id.
//!
//! The methods (`cmd/*recording.rs`) call [`Recordings`]: `acquire` a
//! resource id (5 minutes), `start`, `update`, `query`, `stop`, at most
//! `recording.requests_per_second` per project. Only the runner thread does
//! a recording's file I/O, under the recording's progress lock; the methods
//! read the [`View`] it publishes after each pass, so that no runtime thread
//! waits on a disk. A stop is asked of the runner and awaited.

mod files;
mod playback;
pub(crate) mod runner;
pub(crate) mod shared;
mod upload;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rtm_protocol::methods::RecordingFile;
use rtm_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

pub(crate) use playback::{PlaybackRequest, Playbacks};
pub(crate) use runner::{Host, Runner};
pub(crate) use upload::Uploads;

use crate::config::RecordingConfig;
use crate::error::RtmError;
use crate::model::RoomKey;

/// `used_by` of a resource id adopted from the registry that another
/// node's recording took (redis engine).
const TAKEN_ELSEWHERE: &str = "another node's";
/// How long a resource id from `acquire` stays usable.
pub(crate) const RESOURCE_TTL_MS: i64 = 5 * 60 * 1000;
/// `max_idle_seconds` bounds (the seed's: 5 s to 30 days) and default.
const IDLE_MIN_SECS: i64 = 5;
const IDLE_MAX_SECS: i64 = 30 * 24 * 3600;
const IDLE_DEFAULT_SECS: i64 = 30;

/// The seed's service status numbers.
pub(crate) mod status {
    pub(crate) const RECORDING: i64 = 5;
    pub(crate) const STOP_REQUESTED: i64 = 6;
    pub(crate) const EXITED: i64 = 8;
    pub(crate) const ABNORMAL: i64 = 20;
}

/// `individual` or `mix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RecordMode {
    Individual,
    Mix,
}

/// What a recording records, fixed at start but for the sender lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Definition {
    pub(crate) sid: String,
    pub(crate) resource_id: String,
    pub(crate) pid: i64,
    pub(crate) rid: i64,
    pub(crate) mode: RecordMode,
    /// Empty: every sender.
    pub(crate) uids: Vec<i64>,
    pub(crate) exclude_uids: Vec<i64>,
    /// Empty: every mtype.
    pub(crate) mtypes: Vec<i64>,
    pub(crate) max_idle_ms: i64,
    /// 0: no limit.
    pub(crate) max_ms: i64,
    /// The folder under `<root>/<pid>/`.
    pub(crate) folder: String,
    pub(crate) started_ms: i64,
    /// A room made with `createroom`: losing its schedule means released.
    pub(crate) scheduled: bool,
    /// Uploaded to the project's `recording_s3` bucket once ended.
    #[serde(default)]
    pub(crate) s3: bool,
    /// The room's events are recorded too.
    #[serde(default)]
    pub(crate) events: bool,
}

impl Definition {
    fn records(&self, from: i64, mtype: i64) -> bool {
        (self.uids.is_empty() || self.uids.contains(&from))
            && !self.exclude_uids.contains(&from)
            && (self.mtypes.is_empty() || self.mtypes.contains(&mtype))
    }

    fn room(&self) -> RoomKey {
        RoomKey { pid: self.pid, rid: self.rid }
    }
}

/// How far a recording got; saved after every pass that wrote.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// The last history id looked at.
    pub(crate) cursor: i64,
    /// By sender (0 for `mix`).
    pub(crate) sets: BTreeMap<i64, files::FileSet>,
    pub(crate) idle_since_ms: Option<i64>,
    pub(crate) status: i64,
    /// Why it ended: `stopped`, `idle`, `max_seconds`, `room_released`, `error`.
    pub(crate) reason: Option<String>,
    pub(crate) ended_ms: i64,
    /// By file set, how many of its first slices were queued for upload (S3).
    #[serde(default)]
    pub(crate) queued: BTreeMap<i64, usize>,
    /// File sets appended to since the progress was last saved.
    #[serde(skip)]
    pub(crate) unsynced: Vec<i64>,
    /// When the progress was last saved.
    #[serde(skip)]
    pub(crate) saved_ms: i64,
}

/// The file saved in `.active/`.
#[derive(Serialize, Deserialize)]
struct Saved {
    definition: Definition,
    progress: Progress,
}

/// A running (or recently ended) recording.
pub(crate) struct Recording {
    definition: Mutex<Definition>,
    /// The runner's working state, held across its file I/O: the methods
    /// read `view` instead.
    progress: Mutex<Progress>,
    view: Mutex<View>,
    stop_requested: AtomicBool,
    /// The sender lists changed since the progress was last saved.
    dirty: AtomicBool,
    /// Signalled when it has ended.
    ended: tokio::sync::Notify,
    /// The room's events, when it records them.
    tap: std::sync::OnceLock<Arc<crate::events::Tap>>,
    /// On the redis engine: the view last published to the registry, and
    /// when (`shared.rs`).
    shared_view: Mutex<Option<(shared::SharedView, i64)>>,
    /// The newest sender lists from the registry applied.
    shared_subs: std::sync::atomic::AtomicI64,
}

/// What the methods read of a recording: the runner's last published state.
#[derive(Debug, Clone)]
struct View {
    status: i64,
    ended_ms: i64,
    files: Vec<RecordingFile>,
}

impl Recording {
    fn new(definition: Definition, progress: Progress) -> Self {
        let view =
            View { status: progress.status, ended_ms: progress.ended_ms, files: files_of(&definition, &progress) };
        Self {
            definition: Mutex::new(definition),
            progress: Mutex::new(progress),
            view: Mutex::new(view),
            stop_requested: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            ended: tokio::sync::Notify::new(),
            tap: std::sync::OnceLock::new(),
            shared_view: Mutex::new(None),
            shared_subs: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Publishes the runner's state to the methods; wakes stops waiting on its end.
    fn publish(&self, definition: &Definition, progress: &Progress) {
        let view = View { status: progress.status, ended_ms: progress.ended_ms, files: files_of(definition, progress) };
        let ended = view.status != status::RECORDING;
        *lock(&self.view) = view;
        if ended {
            self.ended.notify_waiters();
        }
    }

    fn status(&self) -> i64 {
        lock(&self.view).status
    }
}

/// A recording's file sets as the methods list them.
fn files_of(definition: &Definition, progress: &Progress) -> Vec<RecordingFile> {
    let mix = definition.mode == RecordMode::Mix;
    let tag = |uid| files::tag(uid, mix);
    let prefix = format!("{}/{}", definition.pid, definition.folder);
    progress
        .sets
        .values()
        .map(|set| RecordingFile {
            filename: files::manifest_name(&prefix, &definition.sid, &tag(set.uid)),
            uid: if set.uid == files::EVENTS_SET { "events".into() } else { set.uid.to_string() },
            mixed_all_users: mix,
            is_playable: true,
            slice_start_time: set.slices.first().map_or(definition.started_ms, |s| s.start_time),
        })
        .collect()
}

/// An acquired resource id.
struct Resource {
    room: RoomKey,
    expires_ms: i64,
    /// The recording started with it.
    used_by: Option<String>,
}

/// What `query` and `stop` answer.
pub(crate) struct Snapshot {
    pub(crate) status: i64,
    pub(crate) started_ms: i64,
    pub(crate) files: Vec<RecordingFile>,
}

/// A started recording whose progress file is still to be written (off the
/// runtime: [`Pending::save`]) before [`Recordings::commit`] makes it run.
pub(crate) struct Pending {
    definition: Definition,
    progress: Progress,
    path: PathBuf,
}

impl Pending {
    /// Writes the recording's first progress file (synced): blocking I/O.
    pub(crate) fn save(&self) -> std::io::Result<()> {
        save_to(&self.path, &self.definition, &self.progress)
    }

    /// Its progress file.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Its recording's id.
    pub(crate) fn sid(&self) -> &str {
        &self.definition.sid
    }

    /// The resource id it took.
    pub(crate) fn resource_id(&self) -> &str {
        &self.definition.resource_id
    }
}

/// The parameters of `start`, checked.
pub(crate) struct StartRequest {
    pub(crate) resource_id: String,
    pub(crate) rid: i64,
    pub(crate) mode: RecordMode,
    pub(crate) uids: Vec<i64>,
    pub(crate) exclude_uids: Vec<i64>,
    pub(crate) mtypes: Vec<i64>,
    pub(crate) max_idle_seconds: Option<i64>,
    pub(crate) max_seconds: Option<i64>,
    pub(crate) folder: Option<String>,
    /// `storage: "s3"`.
    pub(crate) s3: bool,
    /// Record the room's events too.
    pub(crate) events: bool,
}

/// Every recording of this server.
pub(crate) struct Recordings {
    config: RecordingConfig,
    root: PathBuf,
    /// Off when history is off.
    enabled: bool,
    resources: Mutex<HashMap<String, Resource>>,
    recordings: Mutex<HashMap<String, Arc<Recording>>>,
    /// Requests in the current second, by project.
    rate: Mutex<HashMap<i64, (i64, u32)>>,
    /// Playbacks, from files under the same root.
    pub(crate) playbacks: Playbacks,
    /// The S3 uploads, when a project has a bucket.
    pub(crate) uploads: Option<Arc<Uploads>>,
    /// The runner thread, woken when a stop is asked for.
    runner: Mutex<Option<std::thread::Thread>>,
    /// On the redis engine: the registry through which every node answers
    /// for every recording.
    shared: Option<shared::Shared>,
}

fn save_to(path: &std::path::Path, definition: &Definition, progress: &Progress) -> std::io::Result<()> {
    let saved = Saved { definition: definition.clone(), progress: progress.clone() };
    let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
    files::write_atomic(path, &bytes)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("the OS random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Recordings {
    /// Recordings stored under `root`, reading back those that were running
    /// when the server stopped. `enabled` is false when history is off.
    pub(crate) fn open(
        config: RecordingConfig,
        root: PathBuf,
        enabled: bool,
        projects: &[crate::config::ProjectConfig],
    ) -> std::io::Result<Self> {
        let uploads = Uploads::new(root.clone(), projects).map_err(std::io::Error::other)?.map(Arc::new);
        let recordings = Self {
            config,
            playbacks: Playbacks::new(root.clone(), uploads.clone()),
            uploads,
            root,
            enabled,
            resources: Mutex::default(),
            recordings: Mutex::default(),
            rate: Mutex::default(),
            runner: Mutex::default(),
            shared: None,
        };
        if enabled {
            recordings.recover()?;
        }
        Ok(recordings)
    }

    /// On the redis engine: recordings are shared through `remote`.
    pub(crate) fn share_through(&mut self, remote: Arc<crate::engine::Remote>) {
        self.shared = Some(shared::Shared::new(remote));
    }

    /// The registry, on the redis engine.
    pub(crate) fn shared(&self) -> Option<&shared::Shared> {
        self.shared.as_ref()
    }

    /// How long a stop waits for an S3 recording's files to be in the bucket.
    pub(crate) fn stop_upload_wait(&self) -> Duration {
        Duration::from_millis(self.config.stop_upload_wait_ms)
    }

    /// Whether this node holds resource id `id`.
    pub(crate) fn knows_resource(&self, id: &str) -> bool {
        lock(&self.resources).contains_key(id)
    }

    /// Takes over resource id `id` of `room`, acquired on another node
    /// (`used`: a recording took it already).
    pub(crate) fn adopt_resource(&self, id: &str, room: RoomKey, used: bool, now_ms: i64) {
        let used_by = used.then(|| TAKEN_ELSEWHERE.to_owned());
        lock(&self.resources).entry(id.to_owned()).or_insert(Resource {
            room,
            expires_ms: now_ms + RESOURCE_TTL_MS,
            used_by,
        });
    }

    /// What the other nodes answer for `recording` (the registry's view).
    pub(crate) fn shared_view(&self, recording: &Recording) -> shared::SharedView {
        let resource_id = lock(&recording.definition).resource_id.clone();
        let snapshot = self.snapshot(recording);
        let status = match snapshot.status {
            status::RECORDING if recording.stop_requested.load(Ordering::Acquire) => status::STOP_REQUESTED,
            other => other,
        };
        shared::SharedView {
            resource_id,
            status,
            started_ms: snapshot.started_ms,
            files: snapshot.files,
            upload_status: self.upload_status(recording).to_owned(),
        }
    }

    /// Recording `sid` of project `pid`, if this node runs it.
    pub(crate) fn local(&self, pid: i64, sid: &str) -> Option<Arc<Recording>> {
        self.find(pid, sid).ok()
    }

    /// A server without recording (history off, or tests).
    #[cfg(test)]
    pub(crate) fn disabled() -> Self {
        Self::open(RecordingConfig::default(), PathBuf::new(), false, &[]).expect("no I/O when disabled")
    }

    fn active_dir(&self) -> PathBuf {
        self.root.join(".active")
    }

    fn recover(&self) -> std::io::Result<()> {
        let dir = self.active_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let saved: Saved = match std::fs::read(&path).map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(saved)) => saved,
                Ok(Err(e)) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable recording progress; skipped");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if self.uploads.as_ref().is_some_and(|u| u.is_queued(&saved.definition.sid)) {
                // It had ended, and its files were queued for upload, just before a crash.
                std::fs::remove_file(&path)?;
                continue;
            }
            // Whatever was written past the saved lengths is written again from history.
            for slice in saved.progress.sets.values().filter_map(|set| set.slices.last()) {
                files::cut_back(&self.root, slice)?;
            }
            let sid = saved.definition.sid.clone();
            tracing::info!(
                sid,
                pid = saved.definition.pid,
                rid = saved.definition.rid,
                cursor = saved.progress.cursor,
                "recording resumed after a restart"
            );
            lock(&self.recordings).insert(sid, Arc::new(Recording::new(saved.definition, saved.progress)));
        }
        Ok(())
    }

    /// Counts one request of project `pid`; refuses past the per-second limit.
    fn admit(&self, pid: i64, now_ms: i64) -> Result<(), RtmError> {
        if !self.enabled {
            return Err(RtmError::new(
                ErrorCode::RecordingUnavailable,
                "recording reads message history, which is off (history.enabled)",
            ));
        }
        let second = now_ms.div_euclid(1000);
        let mut rate = lock(&self.rate);
        let count = rate.entry(pid).or_insert((second, 0));
        if count.0 != second {
            *count = (second, 0);
        }
        count.1 += 1;
        if count.1 > self.config.requests_per_second {
            let limit = self.config.requests_per_second;
            return Err(RtmError::new(
                ErrorCode::RecordingRateLimited,
                format!("more than {limit} recording requests in one second"),
            ));
        }
        Ok(())
    }

    /// `acquirerecording`.
    pub(crate) fn acquire(&self, room: RoomKey, now_ms: i64) -> Result<String, RtmError> {
        self.admit(room.pid, now_ms)?;
        let id = random_id();
        let mut resources = lock(&self.resources);
        // Unused ids past their time go with every acquire.
        // Ids a recording of another node took are only a copy of the registry's.
        resources.retain(|_, r| {
            (r.used_by.is_some() && r.used_by.as_deref() != Some(TAKEN_ELSEWHERE)) || r.expires_ms > now_ms
        });
        resources.insert(id.clone(), Resource { room, expires_ms: now_ms + RESOURCE_TTL_MS, used_by: None });
        Ok(id)
    }

    /// `startrecording`: the recording starts at the room's newest message
    /// (those sent from now on are recorded). The resource id is taken; the
    /// caller saves the [`Pending`] recording, then commits it, or gives
    /// the resource id back ([`Recordings::give_back`]).
    pub(crate) fn start(
        &self,
        pid: i64,
        request: StartRequest,
        scheduled: bool,
        history_last_id: i64,
        now_ms: i64,
    ) -> Result<Pending, RtmError> {
        self.admit(pid, now_ms)?;
        let room = RoomKey { pid, rid: request.rid };
        let idle = request.max_idle_seconds.unwrap_or(IDLE_DEFAULT_SECS);
        if !(IDLE_MIN_SECS..=IDLE_MAX_SECS).contains(&idle) {
            return Err(RtmError::new(
                ErrorCode::InvalidParameter,
                format!("max_idle_seconds must be {IDLE_MIN_SECS} to {IDLE_MAX_SECS}, not {idle}"),
            ));
        }
        let max = request.max_seconds.unwrap_or(0);
        if max < 0 {
            return Err(RtmError::new(ErrorCode::InvalidParameter, "max_seconds must not be negative"));
        }
        if request.s3 && !self.uploads.as_ref().is_some_and(|u| u.has(pid)) {
            return Err(RtmError::new(
                ErrorCode::InvalidParameter,
                "storage 's3': this project has no recording_s3 bucket configured",
            ));
        }
        let folder = request.folder.unwrap_or_else(|| request.rid.to_string());
        let safe = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
        if folder.is_empty()
            || folder.len() > 128
            || !folder.chars().all(safe)
            || folder.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(RtmError::new(
                ErrorCode::InvalidParameter,
                "file_prefix: 1-128 characters of A-Z a-z 0-9 - _ . and / (no empty, . or .. parts)",
            ));
        }
        let mut resources = lock(&self.resources);
        let resource = match resources.get_mut(&request.resource_id) {
            Some(resource) if resource.used_by.is_some() => {
                return Err(RtmError::new(
                    ErrorCode::RecordingInProgress,
                    "a recording runs with this resource id already",
                ));
            }
            Some(resource) if resource.room == room && resource.expires_ms > now_ms => resource,
            Some(resource) if resource.room != room => {
                return Err(RtmError::new(
                    ErrorCode::RecordingResourceInvalid,
                    format!("this resource id is for room {}", resource.room.rid),
                ));
            }
            Some(_) => {
                return Err(RtmError::new(
                    ErrorCode::RecordingResourceInvalid,
                    "resource id expired (valid 5 minutes)",
                ));
            }
            None => return Err(RtmError::new(ErrorCode::RecordingResourceInvalid, "unknown resource id")),
        };
        let sid = random_id();
        resource.used_by = Some(sid.clone());
        drop(resources);
        let definition = Definition {
            sid: sid.clone(),
            resource_id: request.resource_id,
            pid,
            rid: request.rid,
            mode: request.mode,
            uids: request.uids,
            exclude_uids: request.exclude_uids,
            mtypes: request.mtypes,
            max_idle_ms: idle * 1000,
            max_ms: max.saturating_mul(1000),
            folder,
            started_ms: now_ms,
            scheduled,
            s3: request.s3,
            events: request.events,
        };
        let progress = Progress { cursor: history_last_id, status: status::RECORDING, ..Progress::default() };
        let path = self.progress_path(&sid);
        Ok(Pending { definition, progress, path })
    }

    /// Makes a saved [`Pending`] recording run; its sid and definition.
    /// A recording of events taps `hub` from now on.
    pub(crate) fn commit(&self, pending: Pending, hub: &crate::events::Hub) -> (String, Definition) {
        let Pending { definition, progress, .. } = pending;
        let sid = definition.sid.clone();
        let recording = Recording::new(definition.clone(), progress);
        if definition.events {
            let _ = recording.tap.set(hub.tap(definition.pid, definition.rid));
        }
        lock(&self.recordings).insert(sid.clone(), Arc::new(recording));
        (sid, definition)
    }

    /// Makes resource id `resource_id` usable again (its recording never started).
    pub(crate) fn give_back(&self, resource_id: &str) {
        if let Some(resource) = lock(&self.resources).get_mut(resource_id) {
            resource.used_by = None;
        }
    }

    fn find(&self, pid: i64, sid: &str) -> Result<Arc<Recording>, RtmError> {
        let recording = lock(&self.recordings).get(sid).cloned();
        match recording {
            Some(recording) if lock(&recording.definition).pid == pid => Ok(recording),
            _ => Err(RtmError::new(ErrorCode::RecordingNotFound, format!("no recording {sid}"))),
        }
    }

    /// The resource id `sid` was started with.
    pub(crate) fn resource_id(&self, pid: i64, sid: &str) -> Result<String, RtmError> {
        Ok(lock(&self.find(pid, sid)?.definition).resource_id.clone())
    }

    /// `updaterecording`.
    pub(crate) fn update(
        &self,
        pid: i64,
        sid: &str,
        uids: Option<Vec<i64>>,
        exclude_uids: Option<Vec<i64>>,
        now_ms: i64,
    ) -> Result<(), RtmError> {
        self.admit(pid, now_ms)?;
        let recording = self.find(pid, sid)?;
        if recording.status() != status::RECORDING || recording.stop_requested.load(Ordering::Acquire) {
            return Err(RtmError::new(ErrorCode::RecordingStopped, "the recording has ended"));
        }
        let mut definition = lock(&recording.definition);
        if let Some(uids) = uids {
            definition.uids = uids;
        }
        if let Some(exclude) = exclude_uids {
            definition.exclude_uids = exclude;
        }
        recording.dirty.store(true, Ordering::Release);
        // The runner saves the new lists with its next pass; messages it has
        // not read yet are judged by them.
        Ok(())
    }

    /// `queryrecording`.
    pub(crate) fn query(&self, pid: i64, sid: &str, now_ms: i64) -> Result<(Snapshot, &'static str), RtmError> {
        self.admit(pid, now_ms)?;
        let recording = self.find(pid, sid)?;
        let mut snapshot = self.snapshot(&recording);
        if snapshot.status == status::RECORDING && recording.stop_requested.load(Ordering::Acquire) {
            snapshot.status = status::STOP_REQUESTED;
        }
        Ok((snapshot, self.upload_status(&recording)))
    }

    /// Asks the runner for a stop; `Ok(recording)` to wait on with [`Recordings::ended`].
    pub(crate) fn request_stop(&self, pid: i64, sid: &str, now_ms: i64) -> Result<Arc<Recording>, RtmError> {
        self.admit(pid, now_ms)?;
        let recording = self.find(pid, sid)?;
        let ended = recording.status() != status::RECORDING;
        if ended || recording.stop_requested.swap(true, Ordering::AcqRel) {
            return Err(RtmError::new(
                ErrorCode::RecordingStopped,
                "stoprecording was called already, or the recording ended",
            ));
        }
        if let Some(runner) = lock(&self.runner).as_ref() {
            runner.unpark();
        }
        Ok(recording)
    }

    /// Waits until `recording` has ended (its last pass written, its files
    /// complete), at most `within`; whether it has.
    pub(crate) async fn ended(&self, recording: &Recording, within: Duration) -> bool {
        let wait = async {
            loop {
                let notified = recording.ended.notified();
                tokio::pin!(notified);
                // Registered before the check, so an end in between is not missed.
                notified.as_mut().enable();
                if recording.status() != status::RECORDING {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }

    /// Waits, at most `recording.stop_upload_wait_ms`, until an ended S3
    /// recording's files are all in the bucket; its upload status then.
    pub(crate) async fn uploaded(&self, recording: &Recording) -> &'static str {
        let sid = lock(&recording.definition).sid.clone();
        if let Some(uploads) = &self.uploads {
            let within = Duration::from_millis(self.config.stop_upload_wait_ms);
            uploads.wait_done(&sid, within).await;
        }
        self.upload_status(recording)
    }

    /// `uploaded` (local files, or every file in the bucket) or `backuped`
    /// (an S3 recording still has files waiting locally).
    pub(crate) fn upload_status(&self, recording: &Recording) -> &'static str {
        // One lock at a time: the runner takes progress, then definition.
        let (s3, sid) = {
            let definition = lock(&recording.definition);
            (definition.s3, definition.sid.clone())
        };
        if !s3 {
            return "uploaded";
        }
        let status = recording.status();
        match &self.uploads {
            _ if status == status::RECORDING => "backuped",
            // Ended without its files queued (the error is logged): they are local only.
            _ if status == status::ABNORMAL => "unknown",
            Some(uploads) if uploads.is_pending(&sid) => "backuped",
            _ => "uploaded",
        }
    }

    /// What a recording holds, as the runner last published it.
    pub(crate) fn snapshot(&self, recording: &Recording) -> Snapshot {
        let started_ms = lock(&recording.definition).started_ms;
        let view = lock(&recording.view).clone();
        Snapshot { status: view.status, started_ms, files: view.files }
    }

    fn progress_path(&self, sid: &str) -> PathBuf {
        self.active_dir().join(format!("{sid}.json"))
    }

    /// Saves a running recording's progress atomically.
    fn save(&self, definition: &Definition, progress: &Progress) -> std::io::Result<()> {
        save_to(&self.progress_path(&definition.sid), definition, progress)
    }

    /// The storage root (local files).
    #[cfg(test)]
    pub(crate) fn root(&self) -> &std::path::Path {
        &self.root
    }

    fn running(&self) -> Vec<Arc<Recording>> {
        lock(&self.recordings).values().filter(|r| r.status() == status::RECORDING).cloned().collect()
    }

    /// Every recording this node holds, running or ended.
    fn all(&self) -> Vec<Arc<Recording>> {
        lock(&self.recordings).values().cloned().collect()
    }

    /// Applies the orders other nodes left in the registry for `recording`.
    fn take_orders(&self, recording: &Recording, orders: shared::Orders) {
        if let Some((version, lists)) = orders.subs {
            if version > recording.shared_subs.fetch_max(version, Ordering::AcqRel) {
                let mut definition = lock(&recording.definition);
                if let Some(uids) = lists.uids {
                    definition.uids = uids;
                }
                if let Some(exclude) = lists.exclude_uids {
                    definition.exclude_uids = exclude;
                }
                recording.dirty.store(true, Ordering::Release);
            }
        }
        if orders.stop {
            recording.stop_requested.store(true, Ordering::Release);
        }
    }

    /// Forgets recordings that ended more than `keep_completed_secs` ago.
    fn forget_old(&self, now_ms: i64) {
        let keep_ms = (self.config.keep_completed_secs as i64).saturating_mul(1000);
        let mut forgotten = Vec::new();
        lock(&self.recordings).retain(|sid, r| {
            let view = lock(&r.view);
            let keep = view.status == status::RECORDING || now_ms - view.ended_ms < keep_ms;
            if !keep {
                forgotten.push(sid.clone());
            }
            keep
        });
        if !forgotten.is_empty() {
            lock(&self.resources).retain(|_, r| r.used_by.as_ref().is_none_or(|sid| !forgotten.contains(sid)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recordings(dir: &str) -> Recordings {
        let root = std::env::temp_dir().join(format!("rtm-rec-{dir}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let config = RecordingConfig { requests_per_second: 3, ..RecordingConfig::default() };
        Recordings::open(config, root, true, &[]).unwrap()
    }

    fn start(rid: i64, resource_id: String) -> StartRequest {
        StartRequest {
            resource_id,
            rid,
            mode: RecordMode::Mix,
            uids: vec![],
            exclude_uids: vec![],
            mtypes: vec![],
            max_idle_seconds: None,
            max_seconds: None,
            folder: None,
            s3: false,
            events: false,
        }
    }

    #[test]
    fn resource_ids_are_single_use_per_room_and_expire() {
        let recs = recordings("resources");
        let room = RoomKey { pid: 1, rid: 7 };
        let id = recs.acquire(room, 0).unwrap();
        let other_room = recs.start(1, start(8, id.clone()), false, 0, 1_000).map(|_| ()).unwrap_err();
        assert_eq!(other_room.code, ErrorCode::RecordingResourceInvalid);
        let pending = recs.start(1, start(7, id.clone()), false, 0, 2_000).unwrap();
        pending.save().unwrap();
        let (sid, _) = recs.commit(pending, &crate::events::Hub::default());
        let again = recs.start(1, start(7, id), false, 0, 3_000).map(|_| ()).unwrap_err();
        assert_eq!(again.code, ErrorCode::RecordingInProgress);
        let late = recs.acquire(room, 10_000).unwrap();
        let expired = recs.start(1, start(7, late), false, 0, 10_000 + RESOURCE_TTL_MS).map(|_| ()).unwrap_err();
        assert_eq!(expired.code, ErrorCode::RecordingResourceInvalid);
        assert_eq!(recs.query(2, &sid, 20_000).map(|_| ()).unwrap_err().code, ErrorCode::RecordingNotFound);
        std::fs::remove_dir_all(recs.root()).unwrap();
    }

    #[test]
    fn a_project_gets_its_requests_per_second() {
        let recs = recordings("rate");
        let room = RoomKey { pid: 1, rid: 7 };
        for _ in 0..3 {
            recs.acquire(room, 5_000).unwrap();
        }
        assert_eq!(recs.acquire(room, 5_999).unwrap_err().code, ErrorCode::RecordingRateLimited);
        recs.acquire(RoomKey { pid: 2, rid: 7 }, 5_999).unwrap();
        recs.acquire(room, 6_000).unwrap();
    }

    #[test]
    fn filters_follow_the_lists() {
        let mut d = Definition {
            sid: String::new(),
            resource_id: String::new(),
            pid: 1,
            rid: 1,
            mode: RecordMode::Mix,
            uids: vec![],
            exclude_uids: vec![3],
            mtypes: vec![51],
            max_idle_ms: 0,
            max_ms: 0,
            folder: String::new(),
            started_ms: 0,
            scheduled: false,
            s3: false,
            events: false,
        };
        assert!(d.records(1, 51));
        assert!(!d.records(3, 51));
        assert!(!d.records(1, 52));
        d.uids = vec![2];
        assert!(!d.records(1, 51));
        assert!(d.records(2, 51));
    }
}
