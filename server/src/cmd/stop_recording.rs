//! `stoprecording {sid}` → `{files, upload_status}`: ends the recording
//! once every message history holds for the room so far is in its files,
//! and answers with the complete file sets. A second stop is 200083.

use rtm_protocol::methods::{RecordingStopped, StopRecording};

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::recording::runner;

impl Handler for StopRecording {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RecordingStopped, RtmError> {
        let recording = ctx.recordings.request_stop(ctx.pid, &self.sid, ctx.now_ms)?;
        // The last pass runs here (a few writes of local files), so that the
        // answer lists the files complete.
        runner::finish(ctx.recordings, ctx.engine, ctx.metrics, &recording, ctx.now_ms);
        let snapshot = ctx.recordings.snapshot(&recording);
        // Local: written and synced is stored. S3: queued, uploaded in the background.
        let upload_status = ctx.recordings.upload_status(&recording).into();
        Ok(RecordingStopped { files: snapshot.files, upload_status })
    }
}
