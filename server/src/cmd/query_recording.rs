//! `queryrecording {sid}` → `{status, slice_start_time, files}`: 5 while it
//! records, 6 once a stop is asked for, 8 when it has ended (kept for
//! `recording.keep_completed_secs`), 20 if it failed.

use rtm_protocol::methods::{QueryRecording, RecordingStatus};

use rtm_protocol::ErrorCode;

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::recording::{status, Snapshot};

impl Handler for QueryRecording {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RecordingStatus, RtmError> {
        let (snapshot, upload_status) =
            match (ctx.recordings.query(ctx.pid, &self.sid, ctx.now_ms), ctx.recordings.shared()) {
                (Ok(local), _) => local,
                // Another node's (redis engine): its last published view.
                (Err(e), Some(registry)) if e.code == ErrorCode::RecordingNotFound => {
                    let (view, stop_asked) = Box::pin(registry.view(ctx.pid, &self.sid)).await?;
                    let status = match view.status {
                        status::RECORDING if stop_asked => status::STOP_REQUESTED,
                        other => other,
                    };
                    let snapshot = Snapshot { status, started_ms: view.started_ms, files: view.files };
                    return Ok(answer(snapshot, view.upload_status));
                }
                (Err(e), _) => return Err(e),
            };
        Ok(answer(snapshot, upload_status.into()))
    }
}

fn answer(snapshot: Snapshot, upload_status: String) -> RecordingStatus {
    RecordingStatus {
        status: snapshot.status,
        slice_start_time: snapshot.started_ms,
        files: snapshot.files,
        upload_status,
    }
}
