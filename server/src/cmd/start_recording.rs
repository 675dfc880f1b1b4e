//! `startrecording {resource_id, rid, mode, uids?, exclude_uids?, mtypes?,
//! max_idle_seconds?, max_seconds?, storage?, file_prefix?}` → `{sid}`:
//! records room `rid`'s messages from now on (see `recording/`).

use rtm_protocol::methods::{RecordingStarted, StartRecording};
use rtm_protocol::ErrorCode;

use super::{convert, CmdContext, Handler};
use crate::error::RtmError;
use crate::recording::{runner, RecordMode, StartRequest};

impl Handler for StartRecording {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RecordingStarted, RtmError> {
        // Recording reads the embedded history store.
        ctx.engine.embedded_only("recording")?;
        let mode = match self.mode.as_str() {
            "individual" => RecordMode::Individual,
            "mix" => RecordMode::Mix,
            other => {
                return Err(RtmError::new(
                    ErrorCode::InvalidParameter,
                    format!("mode must be individual or mix, not '{other}'"),
                ))
            }
        };
        let s3 = storage_is_s3(self.storage.as_deref())?;
        let mtypes = convert::mtypes_filter(self.mtypes, ctx.limits)?;
        for (key, list) in [("uids", &self.uids), ("exclude_uids", &self.exclude_uids)] {
            super::bounded_list(key, list.as_ref().map_or(0, Vec::len), ctx.limits)?;
        }
        let room = ctx.room(self.rid);
        let Some(history) = ctx.engine.history() else {
            return Err(RtmError::new(
                ErrorCode::RecordingUnavailable,
                "recording reads message history, which is off",
            ));
        };
        let last_id = history.last_id(room).map_err(RtmError::from)?;
        let request = StartRequest {
            resource_id: self.resource_id,
            rid: self.rid,
            mode,
            uids: self.uids.unwrap_or_default(),
            exclude_uids: self.exclude_uids.unwrap_or_default(),
            mtypes,
            max_idle_seconds: self.max_idle_seconds,
            max_seconds: self.max_seconds,
            folder: self.file_prefix,
            s3,
            events: self.events.unwrap_or(false),
        };
        let scheduled = ctx.engine.schedule(room).is_some();
        let pending = ctx.recordings.start(ctx.pid, request, scheduled, last_id, ctx.now_ms)?;
        // Saved before answering, so a restart right after resumes it; on
        // the blocking pool, as the save syncs.
        let (pending, saved) = tokio::task::spawn_blocking(move || {
            let saved = pending.save();
            (pending, saved)
        })
        .await
        .map_err(|e| RtmError::new(ErrorCode::RtmUnknownError, format!("cannot save the recording: {e}")))?;
        if let Err(e) = saved {
            ctx.recordings.abandon(pending);
            return Err(RtmError::new(ErrorCode::RtmUnknownError, format!("cannot save the recording: {e}")));
        }
        let (sid, definition) = ctx.recordings.commit(pending, ctx.engine.events());
        runner::publish_started(ctx.engine, &definition);
        Ok(RecordingStarted { sid })
    }
}

/// `storage`: `local` (the default) or `s3`; whether it is `s3`.
pub(super) fn storage_is_s3(storage: Option<&str>) -> Result<bool, RtmError> {
    match storage {
        None | Some("local") => Ok(false),
        Some("s3") => Ok(true),
        Some(other) => {
            Err(RtmError::new(ErrorCode::InvalidParameter, format!("storage must be local or s3, not '{other}'")))
        }
    }
}
