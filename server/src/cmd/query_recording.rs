//! `queryrecording {sid}` → `{status, slice_start_time, files}`: 5 while it
//! records, 6 once a stop is asked for, 8 when it has ended (kept for
//! `recording.keep_completed_secs`), 20 if it failed.

use rtm_protocol::methods::{QueryRecording, RecordingStatus};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for QueryRecording {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RecordingStatus, RtmError> {
        let (snapshot, upload_status) = Box::pin(ctx.recordings.query_anywhere(ctx.pid, &self.sid, ctx.now_ms)).await?;
        Ok(RecordingStatus {
            status: snapshot.status,
            slice_start_time: snapshot.started_ms,
            files: snapshot.files,
            upload_status,
        })
    }
}
