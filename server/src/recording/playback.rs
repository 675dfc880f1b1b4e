//! Playback: recorded manifests or prepared JSON Lines files played into a
//! room as room messages, keeping their relative timing.
//!
//! A playback is a task per room. It reads its files, from the recordings
//! directory or from the project's bucket (`storage: "s3"`: the keys a
//! recording uploaded, or prepared objects), then sends each line through the engine as the server API's
//! `sendroommsg` would (the same delivery rules, stored in history), from
//! the line's sender or `from_uid`, waiting between lines as their `mtime`s
//! did, divided by `speed`. Each file keeps its own clock: the next one
//! starts when the previous one ends. `stopplayback`, a server shutdown, the
//! release of the scheduled room it plays into, or the last line ends it,
//! with `playback_completed`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use rtm_protocol::ErrorCode;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::files::Manifest;
use super::Uploads;
use crate::config::Limits;
use crate::engine::{Engine, Sender};
use crate::error::RtmError;
use crate::model::{Body, Event, EventName, RoomKey, RoomMessage};

/// Played messages queued for history before the playback waits for them.
const WRITER_BACKLOG: u64 = 8192;

/// At most this many lines are played from one `startplayback`.
const MAX_LINES: usize = 10_000_000;

/// How long `startplayback` waits for the bucket to say its files exist.
const BUCKET_CHECK: Duration = Duration::from_secs(10);

/// What `startplayback` asks for, checked.
pub(crate) struct PlaybackRequest {
    /// The files, found ([`Playbacks::locate`]).
    pub(crate) files: Located,
    /// Times to play the list; 0 = until stopped.
    pub(crate) repeat: u32,
    /// Timing divided by this; 0 = no waiting at all.
    pub(crate) speed: f64,
    /// Send every line as this user instead of its own sender.
    pub(crate) from_uid: Option<i64>,
    /// Into a scheduled room (a background of `createroom`, or a playback
    /// started in one): it ends when the room is released.
    pub(crate) until_released: bool,
}

/// Where a project's playable files are.
#[derive(Clone)]
enum Source {
    /// `<root>/<pid>/`.
    Folder(PathBuf),
    /// The project's bucket; keys start with `<pid>/`.
    Bucket { store: Arc<dyn ObjectStore>, pid: i64 },
}

/// Files checked to exist, by their names relative to the project's part
/// of their storage.
pub(crate) struct Located {
    source: Source,
    names: Vec<String>,
}

impl Source {
    /// A file's content; `relative` is a plain relative name (checked).
    async fn read(&self, relative: &str) -> Result<Vec<u8>, String> {
        match self {
            Source::Folder(folder) => {
                let path = within(folder, relative)
                    .ok_or_else(|| format!("'{relative}' is not a file in the project's folder"))?;
                tokio::fs::read(&path).await.map_err(|e| format!("{}: {e}", path.display()))
            }
            Source::Bucket { store, pid } => {
                let key = ObjectPath::from(format!("{pid}/{relative}"));
                let object = store.get(&key).await.map_err(|e| format!("{key}: {e}"))?;
                object.bytes().await.map(|b| b.to_vec()).map_err(|e| format!("{key}: {e}"))
            }
        }
    }
}

/// One line of a playable file (a recording's line, or a prepared one).
#[derive(Deserialize)]
struct PlayLine {
    /// Set on a recorded room event, which is not played.
    #[serde(default)]
    event: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    from: Option<i64>,
    #[serde(default = "default_mtype")]
    mtype: i64,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    binary: Option<String>,
    #[serde(default)]
    attrs: String,
    #[serde(default)]
    mtime: i64,
}

fn default_mtype() -> i64 {
    51
}

/// A file's lines, ready to send.
#[derive(Debug)]
struct Track {
    lines: Vec<(i64, i64, i64, Body, String)>, // (from, mtype, mtime, body, attrs)
}

/// The playbacks running, one per room at most.
pub(crate) struct Playbacks {
    root: PathBuf,
    /// The projects' buckets.
    uploads: Option<Arc<Uploads>>,
    playing: Arc<Mutex<HashMap<RoomKey, CancellationToken>>>,
    /// Cancelled at shutdown: every playback stops.
    shutdown: CancellationToken,
}

/// A playing room's place in the map, given up when the task ends.
struct Entry {
    playing: Arc<Mutex<HashMap<RoomKey, CancellationToken>>>,
    room: RoomKey,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.playing.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.room);
    }
}

/// Fresh message ids for played messages, so no retry rule mistakes one
/// for another.
static NEXT_MID: AtomicI64 = AtomicI64::new(0);

fn next_mid(now_ms: i64) -> i64 {
    let _ = NEXT_MID.compare_exchange(0, now_ms.saturating_mul(1000), Ordering::Relaxed, Ordering::Relaxed);
    NEXT_MID.fetch_add(1, Ordering::Relaxed)
}

impl Playbacks {
    pub(crate) fn new(root: PathBuf, uploads: Option<Arc<Uploads>>) -> Self {
        Self { root, uploads, playing: Arc::default(), shutdown: CancellationToken::new() }
    }

    /// Stops every playback (server shutdown).
    pub(crate) fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// `startplayback`: plays the files in a task.
    pub(crate) fn start(
        &self,
        engine: &Engine,
        limits: &Limits,
        room: RoomKey,
        request: PlaybackRequest,
        now_ms: i64,
    ) -> Result<(), RtmError> {
        let token = self.shutdown.child_token();
        {
            let mut playing = self.playing.lock().unwrap_or_else(|e| e.into_inner());
            if playing.contains_key(&room) {
                return Err(RtmError::new(
                    ErrorCode::PlaybackInProgress,
                    format!("room {} is playing already; stopplayback first", room.rid),
                ));
            }
            playing.insert(room, token.clone());
        }
        let (engine, limits, playing) = (engine.clone(), limits.clone(), self.playing.clone());
        tokio::spawn(async move {
            // Out of the map however the task ends (a panic included), so the room can play again.
            let _entry = Entry { playing, room };
            let (reason, played) = play(&engine, &limits, room, &request, &token).await;
            drop(_entry);
            let end = crate::clock::now_ms();
            let data = serde_json::json!({
                "begin_time": now_ms.div_euclid(1000),
                "end_time": end.div_euclid(1000),
                "reason": reason,
                "played": played,
            });
            let event = Event {
                pid: room.pid,
                name: EventName::PlaybackCompleted,
                rid: room.rid,
                uid: None,
                time_ms: end,
                data: data.to_string(),
                endpoint: String::new(),
            };
            engine.events().publish(room.pid, vec![event], end);
            tracing::info!(pid = room.pid, rid = room.rid, reason, played, "playback ended");
        });
        Ok(())
    }

    /// Checks that every file of `files` exists for project `pid`, in its
    /// folder of the recordings directory, or in its bucket (`s3`). A name
    /// is taken relative to the project's part, with or without the `<pid>/`
    /// that recorded manifests' names start with.
    pub(crate) async fn locate(&self, pid: i64, files: &[String], s3: bool) -> Result<Located, RtmError> {
        if files.is_empty() {
            return Err(RtmError::new(ErrorCode::EmptyParameter, "files: give one or more, separated by |"));
        }
        let source = if s3 {
            let store = self.uploads.as_ref().and_then(|u| u.store(pid)).ok_or_else(|| {
                RtmError::new(
                    ErrorCode::InvalidParameter,
                    "storage 's3': this project has no recording_s3 bucket configured",
                )
            })?;
            Source::Bucket { store, pid }
        } else {
            Source::Folder(self.root.join(pid.to_string()))
        };
        let mut names = Vec::new();
        for name in files {
            let relative = name.strip_prefix(&format!("{pid}/")).unwrap_or(name);
            let where_ = if s3 { "this project's bucket" } else { "this project's folder of the recordings directory" };
            let refuse =
                || RtmError::new(ErrorCode::InvalidParameter, format!("no playable file '{name}' in {where_}"));
            if !plain(relative) {
                return Err(refuse());
            }
            match &source {
                Source::Folder(folder) => {
                    if !within(folder, relative).is_some_and(|path| path.is_file()) {
                        return Err(refuse());
                    }
                }
                Source::Bucket { store, pid } => {
                    let key = ObjectPath::from(format!("{pid}/{relative}"));
                    match tokio::time::timeout(BUCKET_CHECK, store.head(&key)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(object_store::Error::NotFound { .. })) => return Err(refuse()),
                        Ok(Err(e)) => {
                            return Err(RtmError::new(
                                ErrorCode::RtmUnknownError,
                                format!("the bucket did not answer for '{name}': {e}"),
                            ))
                        }
                        Err(_) => {
                            return Err(RtmError::new(
                                ErrorCode::RtmUnknownError,
                                format!("the bucket did not answer for '{name}' within {BUCKET_CHECK:?}"),
                            ))
                        }
                    }
                }
            }
            names.push(relative.to_owned());
        }
        Ok(Located { source, names })
    }

    /// `stopplayback`.
    pub(crate) fn stop(&self, room: RoomKey) -> Result<(), RtmError> {
        let playing = self.playing.lock().unwrap_or_else(|e| e.into_inner());
        match playing.get(&room) {
            Some(token) => {
                token.cancel();
                Ok(())
            }
            None => Err(RtmError::new(ErrorCode::PlaybackNotFound, format!("room {} is not playing", room.rid))),
        }
    }
}

/// Whether `relative` is a plain relative path: no root, no empty, `.` or `..` part.
fn plain(relative: &str) -> bool {
    !relative.is_empty()
        && !relative.starts_with('/')
        && relative.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
}

/// `folder/relative` if `relative` is [`plain`] and, symlinks resolved,
/// stays in `folder`.
fn within(folder: &Path, relative: &str) -> Option<PathBuf> {
    if !plain(relative) {
        return None;
    }
    let path = folder.join(relative);
    match (path.canonicalize(), folder.canonicalize()) {
        (Ok(real), Ok(base)) if real.starts_with(&base) => Some(path),
        _ => None,
    }
}

/// Plays the list `repeat` times (0: until stopped); returns why it ended
/// and how many messages went out.
async fn play(
    engine: &Engine,
    limits: &Limits,
    room: RoomKey,
    request: &PlaybackRequest,
    token: &CancellationToken,
) -> (&'static str, u64) {
    let mut tracks = Vec::new();
    for name in &request.files.names {
        match load(&request.files.source, room.pid, name).await {
            Ok(track) => tracks.push(track),
            Err(e) => {
                tracing::warn!(pid = room.pid, rid = room.rid, error = %e, "playback: unreadable file");
                return ("error", 0);
            }
        }
    }
    if tracks.iter().all(|t| t.lines.is_empty()) {
        // Repeating nothing until stopped would spin.
        tracing::warn!(pid = room.pid, rid = room.rid, "playback: the files hold no line");
        return ("error", 0);
    }
    let mut played = 0u64;
    let mut failed = 0u64;
    let mut lines = 0u64;
    let mut round = 0;
    while request.repeat == 0 || round < request.repeat {
        round += 1;
        if token.is_cancelled() {
            return ("stopped", played);
        }
        for track in &tracks {
            let Some(first) = track.lines.first().map(|l| l.2) else { continue };
            let start = tokio::time::Instant::now();
            for (from, mtype, mtime, body, attrs) in &track.lines {
                let released = || request.until_released && engine.schedule(room).is_none();
                if released() {
                    return ("room_released", played);
                }
                if request.speed > 0.0 {
                    let since_first_ms = mtime.saturating_sub(first).max(0) as f64;
                    // Saturates: a far-off mtime at a low speed waits "for ever", never panics.
                    let offset = Duration::try_from_secs_f64(since_first_ms / 1000.0 / request.speed)
                        .unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600));
                    tokio::select! {
                        _ = tokio::time::sleep_until(start + offset) => {}
                        _ = token.cancelled() => return ("stopped", played),
                    }
                    if released() {
                        return ("room_released", played);
                    }
                } else if token.is_cancelled() {
                    return ("stopped", played);
                }
                let now_ms = crate::clock::now_ms();
                let message = RoomMessage {
                    pid: room.pid,
                    rid: room.rid,
                    from: request.from_uid.unwrap_or(*from),
                    mid: next_mid(now_ms),
                    mtype: *mtype,
                    body: body.clone(),
                    attrs: attrs.clone(),
                    mtime: 0,
                };
                match engine.send_room_message(message, Sender::Backend, limits, now_ms).await {
                    Ok(_) => played += 1,
                    Err(e) => {
                        if failed == 0 {
                            tracing::warn!(pid = room.pid, rid = room.rid, code = e.code.code(), ex = %e.ex, "playback: a line was not sent (further ones not logged)");
                        }
                        failed += 1;
                    }
                }
                lines += 1;
                if request.speed <= 0.0 && lines.is_multiple_of(256) {
                    // Full speed: let the connections this runtime serves go on.
                    tokio::task::yield_now().await;
                }
                if lines.is_multiple_of(WRITER_BACKLOG) {
                    // Nothing waits for a played message's storage, so wait here
                    // now and then: history's queue stays bounded however long the file.
                    if let Some(history) = engine.history().cloned() {
                        let _ = tokio::task::spawn_blocking(move || history.wait_written()).await;
                    }
                }
            }
        }
    }
    ("finished", played)
}

/// Reads a manifest's slices, or a JSON Lines file, into a track; the
/// slices must be the project's too.
async fn load(source: &Source, pid: i64, name: &str) -> Result<Track, String> {
    let bytes = source.read(name).await?;
    let mut lines = Vec::new();
    if name.ends_with(".manifest.json") {
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| format!("{name}: {e}"))?;
        for slice in &manifest.slices {
            let relative = slice.file.strip_prefix(&format!("{pid}/")).unwrap_or(&slice.file);
            if !plain(relative) {
                return Err(format!("{name}: slice '{}' is not the project's", slice.file));
            }
            let mut bytes = source.read(relative).await?;
            // A running recording's slice may hold more than its manifest says: read only that.
            bytes.truncate(slice.bytes as usize);
            parse_lines(relative, &bytes, &mut lines)?;
        }
    } else {
        parse_lines(name, &bytes, &mut lines)?;
    }
    Ok(Track { lines })
}

/// Appends a JSON Lines file's lines (`name` for errors) to `lines`.
/// Lines without a sender (a recording's room events) are not played.
fn parse_lines(name: &str, bytes: &[u8], lines: &mut Vec<(i64, i64, i64, Body, String)>) -> Result<(), String> {
    for (n, text) in bytes.split(|b| *b == b'\n').enumerate() {
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line: PlayLine = serde_json::from_slice(text).map_err(|e| format!("{name} line {}: {e}", n + 1))?;
        if line.event.is_some() {
            continue;
        }
        let Some(from) = line.from else {
            return Err(format!("{name} line {}: no 'from' (the sender)", n + 1));
        };
        let body = match (line.msg, line.binary) {
            (_, Some(b64)) => {
                Body::Binary(STANDARD.decode(b64).map_err(|e| format!("{name} line {}: binary: {e}", n + 1))?)
            }
            (Some(text), None) => Body::Text(text),
            (None, None) => Body::Text(String::new()),
        };
        lines.push((from, line.mtype, line.mtime, body, line.attrs));
        if lines.len() > MAX_LINES {
            return Err(format!("more than {MAX_LINES} lines"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loads_recorded_and_prepared_lines() {
        let root = std::env::temp_dir().join(format!("rtm-playback-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let prepared = root.join("script.jsonl");
        std::fs::write(&prepared, "{\"from\":1,\"msg\":\"hi\",\"mtime\":1000}\n\n{\"event\":\"member_joined\",\"uid\":3,\"time\":1200,\"data\":{}}\n{\"from\":2,\"mtype\":52,\"binary\":\"AP8=\",\"attrs\":\"x\",\"mtime\":1500}\n").unwrap();
        let source = Source::Folder(root.clone());
        let track = load(&source, 1, "script.jsonl").await.unwrap();
        assert!(within(&root, "../x").is_none() && within(&root, "/etc/passwd").is_none());
        assert_eq!(track.lines.len(), 2);
        assert_eq!(track.lines[0].3, Body::Text("hi".into()));
        assert_eq!(
            (track.lines[1].1, &track.lines[1].3, track.lines[1].4.as_str()),
            (52, &Body::Binary(vec![0, 255]), "x")
        );
        std::fs::write(&prepared, "{\"msg\":\"no sender\"}\n").unwrap();
        assert!(load(&source, 1, "script.jsonl").await.unwrap_err().contains("line 1"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
