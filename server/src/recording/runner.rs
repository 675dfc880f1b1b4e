//! The recording thread: a pass over the running recordings every
//! `recording.poll_ms`, and the last pass of a recording being stopped.
//!
//! A pass over one recording, under its progress lock:
//! 1. its lifecycle: a stop asked for, `max_seconds` reached, its scheduled
//!    room released, or no member for `max_idle_seconds`;
//! 2. the room's messages past its cursor, from history, appended to the
//!    slices of their file sets (every one of them when it ends) and synced;
//! 3. the manifests and the progress saved, or, when it ends, the manifests
//!    marked complete, the progress file removed and `recording_completed`
//!    published.
//!
//! All of a recording's file I/O happens here, on a thread of its own:
//! `stoprecording` wakes the thread and awaits the end. After each pass the
//! recording's view (status, files) is published for the methods to read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::files::{self, FileSet, Line, Manifest, Slice};
use super::{lock, shared, status, Definition, Progress, RecordMode, Recording, Recordings};
use crate::engine::{AfterError, Engine};
use crate::metrics::Metrics;
use crate::model::{Event, EventName};

/// Lines for file sets: by set, the bytes and the messages among them.
type Lines = BTreeMap<i64, (Vec<u8>, u64)>;

/// Rows read from history per read while a recording runs; a pass reads
/// at most `PASS_ROWS`, so that one busy room does not hold up the others.
const READ_ROWS: usize = 1_000;
const PASS_ROWS: usize = 50_000;

/// What the thread runs on: the recordings and the engine they read (the
/// server's `App`).
pub(crate) trait Host: Send + Sync + 'static {
    fn recordings(&self) -> &Recordings;
    fn engine(&self) -> &Engine;
    fn metrics(&self) -> &Metrics;
}

/// The thread, stopped with [`Runner::stop`].
pub(crate) struct Runner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Runner {
    /// Starts the thread (a no-op one when recording is off).
    pub(crate) fn start<H: Host>(host: Arc<H>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        if !host.recordings().enabled {
            return Ok(Self { stop, thread: None });
        }
        let poll = Duration::from_millis(host.recordings().config.poll_ms.max(1));
        let stopping = stop.clone();
        // For reads from Redis (the redis engine's history).
        let runtime = tokio::runtime::Handle::try_current().ok();
        let thread = std::thread::Builder::new().name("rtm-recording".into()).spawn(move || {
            let (recordings, engine, metrics) = (host.recordings(), host.engine(), host.metrics());
            let ctx = Ctx { recordings, engine, metrics, runtime: runtime.as_ref() };
            *lock(&recordings.runner) = Some(std::thread::current());
            while !stopping.load(Ordering::Acquire) {
                let now_ms = crate::clock::now_ms();
                for recording in recordings.running() {
                    pass(&ctx, &recording, now_ms, false);
                }
                share(&ctx, now_ms, false);
                recordings.forget_old(now_ms);
                std::thread::park_timeout(poll);
            }
            // Once more, so that what history holds at shutdown is in the files, synced.
            let now_ms = crate::clock::now_ms();
            for recording in recordings.running() {
                pass(&ctx, &recording, now_ms, true);
            }
            share(&ctx, now_ms, true);
            *lock(&recordings.runner) = None;
        })?;
        Ok(Self { stop, thread: Some(thread) })
    }

    /// Makes a last pass and stops the thread; running recordings resume
    /// at the next start.
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Logs `what` at most once every 5 s (a Redis outage would otherwise
/// log it every pass, for every recording).
fn warn_now_and_then(sid: &str, what: &str, error: &str) {
    static LAST_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now_ms = crate::clock::now_ms();
    if now_ms - LAST_MS.load(Ordering::Relaxed) >= 5_000 {
        LAST_MS.store(now_ms, Ordering::Relaxed);
        tracing::warn!(sid, error, "recording: {what}; retried next pass");
    }
}

/// On the redis engine: takes the orders other nodes left for this node's
/// running recordings (not in the last pass, at shutdown), and publishes
/// the views that changed (or are due for a refresh) to the registry
/// (`shared.rs`). At the first failure the rest waits for the next pass:
/// with Redis away, each call would take the whole operation timeout.
fn share(ctx: &Ctx<'_>, now_ms: i64, final_pass: bool) {
    let (Some(registry), Some(runtime)) = (ctx.recordings.shared(), ctx.runtime) else { return };
    let keep_ms = (ctx.recordings.config.keep_completed_secs as i64).saturating_mul(1000).max(1);
    for recording in ctx.recordings.all() {
        let (pid, sid) = {
            let definition = lock(&recording.definition);
            (definition.pid, definition.sid.clone())
        };
        let running = recording.status() == status::RECORDING;
        if running && !final_pass {
            match runtime.block_on(registry.orders(pid, &sid)) {
                Ok(orders) => ctx.recordings.take_orders(&recording, orders),
                Err(e) => return warn_now_and_then(&sid, "registry orders unreadable", &e.ex),
            }
        }
        let view = ctx.recordings.shared_view(&recording);
        let due = match &*lock(&recording.shared_view) {
            Some((last, at)) => *last != view || (running && now_ms - at >= shared::REFRESH_MS),
            None => true,
        };
        if !due {
            continue;
        }
        let ttl_ms = if shared::ended(view.status) { keep_ms } else { shared::RUNNING_TTL_MS };
        match runtime.block_on(registry.publish(pid, &sid, &view, ttl_ms)) {
            Ok(()) => *lock(&recording.shared_view) = Some((view, now_ms)),
            Err(e) => return warn_now_and_then(&sid, "registry view not published", &e.ex),
        }
    }
}

/// What a pass works with.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    recordings: &'a Recordings,
    engine: &'a Engine,
    metrics: &'a Metrics,
    /// Runs the redis engine's history reads; `None` outside a runtime (tests).
    runtime: Option<&'a tokio::runtime::Handle>,
}

/// One pass over a recording (`save`: the progress must be saved, at
/// shutdown), then its view published.
fn pass(ctx: &Ctx<'_>, recording: &Recording, now_ms: i64, save: bool) {
    let engine = ctx.engine;
    let mut progress = lock(&recording.progress);
    if progress.status != status::RECORDING {
        return;
    }
    let definition = lock(&recording.definition).clone();
    if definition.events && recording.tap.get().is_none() {
        // Resumed after a restart: events from now on.
        let _ = recording.tap.set(engine.events().tap(definition.pid, definition.rid));
    }
    advance(ctx, recording, &definition, &mut progress, now_ms, save);
    if progress.status != status::RECORDING {
        if let Some(tap) = recording.tap.get() {
            engine.events().untap(definition.pid, definition.rid, tap);
        }
    }
    recording.publish(&definition, &progress);
}

fn advance(
    ctx: &Ctx<'_>,
    recording: &Recording,
    definition: &Definition,
    progress: &mut Progress,
    now_ms: i64,
    save: bool,
) {
    let Ctx { recordings, engine, .. } = *ctx;
    let room = definition.room();
    let was_idle_since = progress.idle_since_ms;
    let mut reason = None;
    if recording.stop_requested.load(Ordering::Acquire) {
        reason = Some("stopped".to_owned());
    }
    if reason.is_none() {
        if definition.max_ms > 0 && now_ms - definition.started_ms >= definition.max_ms {
            reason = Some("max_seconds".into());
        } else if definition.scheduled && engine.schedule(room).is_none() {
            reason = Some("room_released".into());
        } else if engine.member_count(room) == 0 {
            let since = *progress.idle_since_ms.get_or_insert(now_ms);
            if now_ms - since >= definition.max_idle_ms {
                reason = Some("idle".into());
            }
        } else {
            progress.idle_since_ms = None;
        }
    }
    if !engine.keeps_history() {
        return;
    }
    let ending = reason.is_some();
    let limit = if ending { usize::MAX } else { PASS_ROWS };
    let events = match recording.tap.get() {
        Some(tap) => {
            let (events, lost) = tap.drain();
            if lost > 0 {
                tracing::warn!(
                    sid = definition.sid,
                    lost,
                    "room events came faster than the recording took them; some are not recorded"
                );
            }
            events
        }
        None => Vec::new(),
    };
    let (written, complete) = match record(ctx, definition, progress, events, now_ms, limit) {
        Ok(written) => written,
        Err(e) => {
            // The progress file stays: a restart retries from the last saved point.
            tracing::error!(sid = definition.sid, error = %e, "recording failed; it resumes at the next start");
            progress.status = status::ABNORMAL;
            progress.reason = Some("error".into());
            progress.ended_ms = now_ms;
            publish_completed(engine, definition, progress);
            return;
        }
    };
    for uid in written {
        if !progress.unsynced.contains(&uid) {
            progress.unsynced.push(uid);
        }
    }
    let dirty = recording.dirty.swap(false, Ordering::AcqRel);
    // Not with messages left unread (Redis did not answer): the next pass ends it.
    if let Some(reason) = reason.filter(|_| complete) {
        progress.status = status::EXITED;
        progress.reason = Some(reason);
        progress.ended_ms = now_ms;
        // In order, stopping at the first failure: the progress file goes only
        // once the files it would resume are synced and their manifests complete.
        let completed = sync_slices(recordings, progress)
            .and_then(|()| write_manifests(recordings, definition, progress, None))
            .and_then(|()| queue_upload(recordings, definition, progress))
            .and_then(|()| std::fs::remove_file(recordings.active_dir().join(format!("{}.json", definition.sid))));
        if let Err(e) = completed {
            tracing::error!(sid = definition.sid, error = %e, "could not complete the recording's files; it resumes at the next start");
            progress.status = status::ABNORMAL;
        }
        publish_completed(engine, definition, progress);
        tracing::info!(
            sid = definition.sid,
            rid = definition.rid,
            reason = progress.reason.as_deref(),
            "recording ended"
        );
        return;
    }
    let changed = !progress.unsynced.is_empty() || dirty || progress.idle_since_ms != was_idle_since;
    let due = now_ms - progress.saved_ms >= recordings.config.sync_ms as i64 || save;
    if changed && due {
        // Synced before the progress that names their lengths is saved.
        let touched = progress.unsynced.clone();
        let saved = sync_slices(recordings, progress)
            .and_then(|()| write_manifests(recordings, definition, progress, Some(&touched)))
            .and_then(|()| recordings.save(definition, progress));
        match saved {
            Ok(()) => {
                progress.saved_ms = now_ms;
                queue_finished_slices(recordings, definition, progress);
            }
            Err(e) => {
                recording.dirty.store(dirty, Ordering::Release);
                tracing::warn!(sid = definition.sid, error = %e, "could not save the recording's progress; retried next pass");
            }
        }
    } else if dirty {
        recording.dirty.store(true, Ordering::Release);
    }
}

/// An S3 recording's slices and manifests, queued for upload.
fn queue_upload(recordings: &Recordings, definition: &Definition, progress: &Progress) -> std::io::Result<()> {
    let Some(uploads) = recordings.uploads.as_ref().filter(|_| definition.s3) else { return Ok(()) };
    let mix = definition.mode == RecordMode::Mix;
    let folder = format!("{}/{}", definition.pid, definition.folder);
    let mut names = Vec::new();
    for set in progress.sets.values() {
        names.extend(set.slices.iter().map(|s| s.file.clone()));
        names.push(files::manifest_name(&folder, &definition.sid, &files::tag(set.uid, mix)));
    }
    uploads.queue(definition.pid, &definition.sid, names)
}

/// Queues the slices an S3 recording has moved past for upload. Only once
/// the progress naming their successors is saved: a resume cuts back and
/// appends to the last slice a saved progress names, so that one must stay.
fn queue_finished_slices(recordings: &Recordings, definition: &Definition, progress: &mut Progress) {
    let Some(uploads) = recordings.uploads.as_ref().filter(|_| definition.s3) else { return };
    for set in progress.sets.values() {
        let queued = progress.queued.entry(set.uid).or_default();
        let finished = set.slices.len().saturating_sub(1);
        while *queued < finished {
            if let Err(e) = uploads.queue_slice(definition.pid, &definition.sid, &set.slices[*queued].file) {
                // It goes up with the rest when the recording ends.
                tracing::warn!(sid = definition.sid, error = %e, "could not queue a slice for upload");
                return;
            }
            *queued += 1;
        }
    }
}

/// Syncs the last slice of every file set written to since the last save
/// (earlier slices were synced when the next one started).
fn sync_slices(recordings: &Recordings, progress: &mut Progress) -> std::io::Result<()> {
    for uid in &progress.unsynced {
        if let Some(slice) = progress.sets.get(uid).and_then(|set| set.slices.last()) {
            files::sync(&recordings.root, slice)?;
        }
    }
    progress.unsynced.clear();
    Ok(())
}

/// Appends the room's new messages, and the `events` drained from its tap,
/// to their file sets; returns the sets written to. An event goes among the
/// messages by time: before the first message this pass reads that is
/// newer (so events that reach history's messages late can be a little
/// early, never reordered among themselves).
fn record(
    ctx: &Ctx<'_>,
    definition: &Definition,
    progress: &mut Progress,
    events: Vec<Event>,
    now_ms: i64,
    limit: usize,
) -> std::io::Result<(Vec<i64>, bool)> {
    let Ctx { recordings, engine, metrics, runtime } = *ctx;
    let mix = definition.mode == RecordMode::Mix;
    let event_set = if mix { 0 } else { files::EVENTS_SET };
    let mut events = events.into_iter().peekable();
    let event_line = |lines: &mut Lines, event: &Event| -> std::io::Result<()> {
        let (buf, _) = lines.entry(event_set).or_default();
        serde_json::to_writer(&mut *buf, &files::EventLine::of(event)).map_err(std::io::Error::other)?;
        buf.push(b'\n');
        Ok(())
    };
    let mut touched = Vec::new();
    let mut read = 0;
    let mut complete = true;
    while read < limit {
        let rows = match engine.history_after(definition.room(), progress.cursor, READ_ROWS, runtime) {
            Ok(rows) => rows,
            Err(AfterError::Store(e)) => return Err(std::io::Error::other(e)),
            Err(AfterError::Unavailable(e)) => {
                // The cursor stays: the next pass reads on from it.
                warn_now_and_then(&definition.sid, "history unreadable", &e.ex);
                complete = false;
                break;
            }
        };
        let Some(last) = rows.last() else { break };
        let cursor = last.id;
        let mut lines = Lines::new();
        let mut mtimes = Vec::new();
        for row in rows.iter().filter(|row| definition.records(row.from, row.mtype)) {
            while let Some(event) = events.next_if(|e| e.time_ms <= row.mtime) {
                event_line(&mut lines, &event)?;
            }
            mtimes.push(row.mtime);
            let set = if mix { 0 } else { row.from };
            let (buf, count) = lines.entry(set).or_default();
            serde_json::to_writer(&mut *buf, &Line::of(row)).map_err(std::io::Error::other)?;
            buf.push(b'\n');
            *count += 1;
        }
        append_lines(recordings, definition, progress, lines, now_ms, &mut touched)?;
        let synced_ms = crate::clock::now_ms();
        metrics.recorded(&mtimes.iter().map(|mtime| synced_ms - mtime).collect::<Vec<_>>());
        read += rows.len();
        progress.cursor = cursor;
        if rows.len() < READ_ROWS {
            break;
        }
    }
    let mut lines = Lines::new();
    for event in events {
        event_line(&mut lines, &event)?;
    }
    append_lines(recordings, definition, progress, lines, now_ms, &mut touched)?;
    Ok((touched, complete))
}

/// Appends `lines` to the last slices of their sets (starting a new slice
/// where the last one is full); adds the sets to `touched`.
fn append_lines(
    recordings: &Recordings,
    definition: &Definition,
    progress: &mut Progress,
    lines: Lines,
    now_ms: i64,
    touched: &mut Vec<i64>,
) -> std::io::Result<()> {
    let mix = definition.mode == RecordMode::Mix;
    let folder = format!("{}/{}", definition.pid, definition.folder);
    let config = &recordings.config;
    for (uid, (buf, count)) in lines {
        let set = progress.sets.entry(uid).or_insert_with(|| FileSet { uid, slices: Vec::new() });
        let full = set.slices.last().is_none_or(|s| {
            s.bytes >= config.slice_bytes || now_ms - s.start_time >= (config.slice_secs as i64) * 1000
        });
        if full {
            if let Some(previous) = set.slices.last() {
                files::sync(&recordings.root, previous)?;
            }
            let tag = files::tag(uid, mix);
            let file = files::slice_name(&folder, &definition.sid, &tag, set.slices.len() + 1);
            set.slices.push(Slice { file, start_time: now_ms, bytes: 0, messages: 0 });
        }
        let slice = set.slices.last_mut().expect("a slice was made");
        slice.bytes = files::append(&recordings.root, slice, &buf)?;
        slice.messages += count;
        if !touched.contains(&uid) {
            touched.push(uid);
        }
    }
    Ok(())
}

/// Writes the manifests of `only` the sets listed, or of all, complete
/// when the recording has ended.
fn write_manifests(
    recordings: &Recordings,
    definition: &Definition,
    progress: &Progress,
    only: Option<&[i64]>,
) -> std::io::Result<()> {
    let mix = definition.mode == RecordMode::Mix;
    let folder = format!("{}/{}", definition.pid, definition.folder);
    for set in progress.sets.values().filter(|s| only.is_none_or(|only| only.contains(&s.uid))) {
        let manifest = Manifest {
            sid: definition.sid.clone(),
            pid: definition.pid,
            rid: definition.rid,
            uid: if set.uid == files::EVENTS_SET { 0 } else { set.uid },
            mixed_all_users: mix,
            events: set.uid == files::EVENTS_SET,
            complete: progress.status != status::RECORDING,
            start_time: definition.started_ms,
            end_time: progress.ended_ms,
            slices: set.slices.clone(),
        };
        let name = files::manifest_name(&folder, &definition.sid, &files::tag(set.uid, mix));
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
        files::write_atomic(&files::path(&recordings.root, &name), &bytes)?;
    }
    Ok(())
}

/// `recording_completed {sid, begin_time, end_time, reason, files}` to the
/// room's listeners.
fn publish_completed(engine: &Engine, definition: &Definition, progress: &Progress) {
    let files: Vec<String> = super::files_of(definition, progress).into_iter().map(|f| f.filename).collect();
    let data = serde_json::json!({
        "sid": definition.sid,
        // Unix seconds, as in every event's data.
        "begin_time": definition.started_ms.div_euclid(1000),
        "end_time": progress.ended_ms.div_euclid(1000),
        "reason": progress.reason,
        "files": files,
    });
    publish(engine, definition, EventName::RecordingCompleted, data, progress.ended_ms);
}

/// `recording_started {sid, mode, begin_time}`.
pub(crate) fn publish_started(engine: &Engine, definition: &Definition) {
    let data = serde_json::json!({
        "sid": definition.sid,
        "mode": definition.mode,
        "begin_time": definition.started_ms.div_euclid(1000),
    });
    publish(engine, definition, EventName::RecordingStarted, data, definition.started_ms);
}

fn publish(engine: &Engine, definition: &Definition, name: EventName, data: serde_json::Value, now_ms: i64) {
    let event = Event {
        pid: definition.pid,
        name,
        rid: definition.rid,
        uid: None,
        time_ms: now_ms,
        data: data.to_string(),
        endpoint: String::new(),
    };
    engine.events().publish(definition.pid, vec![event], now_ms);
}
