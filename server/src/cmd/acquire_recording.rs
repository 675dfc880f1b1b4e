//! `acquirerecording {rid}` → `{resource_id}`: reserves a recording of room
//! `rid`; `startrecording` must use the id within 5 minutes.

use rtm_protocol::methods::{AcquireRecording, RecordingResource};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for AcquireRecording {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RecordingResource, RtmError> {
        let room = ctx.room(self.rid);
        let resource_id = ctx.recordings.acquire(room, ctx.now_ms)?;
        if let Some(registry) = ctx.recordings.shared() {
            // So that any node may start it.
            Box::pin(registry.put_resource(room, &resource_id, crate::recording::RESOURCE_TTL_MS)).await?;
        }
        Ok(RecordingResource { resource_id })
    }
}
