//! `startrecording {resource_id, rid, mode, uids?, exclude_uids?, mtypes?,
//! max_idle_seconds?, max_seconds?, storage?, file_prefix?}` → `{sid}`:
//! records room `rid`'s messages from now on (see `recording/`).

use std::sync::{Arc, Mutex};

use rtm_protocol::methods::{RecordingStarted, StartRecording};
use rtm_protocol::ErrorCode;

use super::{convert, CmdContext, Handler};
use crate::error::RtmError;
use crate::recording::{runner, RecordMode, StartRequest};

impl Handler for StartRecording {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RecordingStarted, RtmError> {
        // Boxed: its state across the save would otherwise size every quest's future.
        Box::pin(start(self, ctx)).await
    }
}

async fn start(request: StartRecording, ctx: &CmdContext<'_>) -> Result<RecordingStarted, RtmError> {
    let mode = match request.mode.as_str() {
        "individual" => RecordMode::Individual,
        "mix" => RecordMode::Mix,
        other => {
            return Err(RtmError::new(
                ErrorCode::InvalidParameter,
                format!("mode must be individual or mix, not '{other}'"),
            ))
        }
    };
    let s3 = convert::storage_is_s3(request.storage.as_deref())?;
    let mtypes = convert::mtypes_filter(request.mtypes, ctx.limits)?;
    for (key, list) in [("uids", &request.uids), ("exclude_uids", &request.exclude_uids)] {
        super::bounded_list(key, list.as_ref().map_or(0, Vec::len), ctx.limits)?;
    }
    let room = ctx.room(request.rid);
    if !ctx.engine.keeps_history() {
        return Err(RtmError::new(ErrorCode::RecordingUnavailable, "recording reads message history, which is off"));
    }
    let last_id = Box::pin(ctx.engine.history_last_id(room)).await?;
    let request = StartRequest {
        resource_id: request.resource_id,
        rid: request.rid,
        mode,
        uids: request.uids.unwrap_or_default(),
        exclude_uids: request.exclude_uids.unwrap_or_default(),
        mtypes,
        max_idle_seconds: request.max_idle_seconds,
        max_seconds: request.max_seconds,
        folder: request.file_prefix,
        s3,
        events: request.events.unwrap_or(false),
    };
    let registry = ctx.recordings.shared();
    if let Some(registry) = registry.filter(|_| !ctx.recordings.knows_resource(&request.resource_id)) {
        // Acquired on another node (redis engine).
        if let Some((rid, taken)) = Box::pin(registry.resource(ctx.pid, &request.resource_id)).await? {
            let room = ctx.room(rid);
            ctx.recordings.adopt_resource(&request.resource_id, room, taken.is_some(), ctx.now_ms);
        }
    }
    let scheduled = ctx.engine.schedule(room).is_some();
    let pending = ctx.recordings.start(ctx.pid, request, scheduled, last_id, ctx.now_ms)?;
    // From here until the answer, should this quest be dropped (its
    // connection gone) or fail, the guard undoes the start: the resource id
    // is given back (in the registry too), the progress file removed.
    let save = Arc::new(Mutex::new(Save::Saving));
    let mut guard = Unanswered {
        recordings: ctx.recordings,
        save: save.clone(),
        resource_id: pending.resource_id().to_owned(),
        claimed: None,
        armed: true,
    };
    if let Some(registry) = registry {
        Box::pin(registry.claim(ctx.pid, pending.resource_id(), pending.sid())).await?;
        guard.claimed = Some((ctx.pid, pending.sid().to_owned()));
    }
    // Saved before answering, so a restart right after resumes it; on
    // the blocking pool, as the save syncs.
    let (pending, saved) = tokio::task::spawn_blocking(move || {
        let saved = pending.save();
        let mut state = save.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            Save::Cancelled if saved.is_ok() => {
                let _ = std::fs::remove_file(pending.path());
            }
            _ if saved.is_ok() => *state = Save::Saved(pending.path().to_owned()),
            _ => {}
        }
        drop(state);
        (pending, saved)
    })
    .await
    .map_err(|e| RtmError::new(ErrorCode::RtmUnknownError, format!("cannot save the recording: {e}")))?;
    if let Err(e) = saved {
        return Err(RtmError::new(ErrorCode::RtmUnknownError, format!("cannot save the recording: {e}")));
    }
    guard.armed = false;
    let (sid, definition) = ctx.recordings.commit(pending, ctx.engine.events());
    runner::publish_started(ctx.engine, &definition);
    if let (Some(registry), Some(recording)) = (registry, ctx.recordings.local(ctx.pid, &sid)) {
        // Known to every node from now on (the runner republishes if this fails).
        let view = ctx.recordings.shared_view(&recording);
        let _ = Box::pin(registry.publish(ctx.pid, &sid, &view, crate::recording::shared::RUNNING_TTL_MS)).await;
    }
    Ok(RecordingStarted { sid })
}

/// Where the first progress file's save is.
enum Save {
    Saving,
    Saved(std::path::PathBuf),
    Cancelled,
}

/// A started recording whose quest has not got to its answer: dropped
/// (the connection went), it gives the resource id back and removes the
/// progress file, now or once the save is done, so no recording nobody
/// was told of resumes after a restart.
struct Unanswered<'a> {
    recordings: &'a crate::recording::Recordings,
    save: Arc<Mutex<Save>>,
    resource_id: String,
    /// `(pid, sid)` once the registry gave the id to this start (redis engine).
    claimed: Option<(i64, String)>,
    armed: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = self.save.lock().unwrap_or_else(|e| e.into_inner());
        if let Save::Saved(path) = &*state {
            let _ = std::fs::remove_file(path);
        }
        *state = Save::Cancelled;
        drop(state);
        self.recordings.give_back(&self.resource_id);
        if let (Some((pid, sid)), Some(registry)) = (self.claimed.take(), self.recordings.shared()) {
            registry.release_later(pid, self.resource_id.clone(), sid);
        }
    }
}
