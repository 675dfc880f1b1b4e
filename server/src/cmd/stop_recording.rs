//! `stoprecording {sid}` → `{files, upload_status}`: ends the recording
//! once every message history holds for the room so far is in its files,
//! and answers with the complete file sets. A second stop is 200083.

use std::time::Duration;

use rtm_protocol::methods::{RecordingStopped, StopRecording};
use rtm_protocol::ErrorCode;

use super::{CmdContext, Handler};
use crate::error::RtmError;

/// The longest a stop waits for the recording thread's last pass (a few
/// synced writes; longer only on a stalled disk).
const END_WAIT: Duration = Duration::from_secs(30);

impl Handler for StopRecording {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RecordingStopped, RtmError> {
        let recording = match (ctx.recordings.request_stop(ctx.pid, &self.sid, ctx.now_ms), ctx.recordings.shared()) {
            (Ok(recording), _) => recording,
            // Another node's (redis engine): asked through the registry.
            (Err(e), Some(registry)) if e.code == ErrorCode::RecordingNotFound => {
                let waits = (END_WAIT, ctx.recordings.stop_upload_wait());
                return match Box::pin(registry.stop(ctx.pid, &self.sid, waits)).await? {
                    Some(view) => Ok(RecordingStopped { files: view.files, upload_status: view.upload_status }),
                    None => Err(still_writing()),
                };
            }
            (Err(e), _) => return Err(e),
        };
        // The recording thread makes the last pass (file I/O stays off the runtime).
        if !Box::pin(ctx.recordings.ended(&recording, END_WAIT)).await {
            return Err(still_writing());
        }
        // Local: written and synced is stored. S3: `uploaded` if the bucket
        // took every file within recording.stop_upload_wait_ms, else `backuped`.
        let upload_status = Box::pin(ctx.recordings.uploaded(&recording)).await.into();
        let snapshot = ctx.recordings.snapshot(&recording);
        Ok(RecordingStopped { files: snapshot.files, upload_status })
    }
}

fn still_writing() -> RtmError {
    RtmError::new(
        ErrorCode::RtmUnknownError,
        "the recording is still writing its last files (a slow disk, or history in Redis unreadable?); \
         queryrecording tells when it has ended",
    )
}
