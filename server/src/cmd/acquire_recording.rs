//! `acquirerecording {rid}` → `{resource_id}`: reserves a recording of room
//! `rid`; `startrecording` must use the id within 5 minutes.

use rtm_protocol::methods::{AcquireRecording, RecordingResource};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for AcquireRecording {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RecordingResource, RtmError> {
        let resource_id = ctx.recordings.acquire(ctx.room(self.rid), ctx.now_ms)?;
        Ok(RecordingResource { resource_id })
    }
}
