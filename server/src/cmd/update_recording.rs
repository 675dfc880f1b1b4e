//! `updaterecording {sid, uids?, exclude_uids?}` → `{}`: changes whom a
//! running recording records, from the next message it reads.

use rtm_protocol::methods::{Empty, UpdateRecording};

use rtm_protocol::ErrorCode;

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::recording::shared::SenderLists;

impl Handler for UpdateRecording {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        for (key, list) in [("uids", &self.uids), ("exclude_uids", &self.exclude_uids)] {
            super::bounded_list(key, list.as_ref().map_or(0, Vec::len), ctx.limits)?;
        }
        let lists = SenderLists { uids: self.uids, exclude_uids: self.exclude_uids };
        let local =
            ctx.recordings.update(ctx.pid, &self.sid, lists.uids.clone(), lists.exclude_uids.clone(), ctx.now_ms);
        match (local, ctx.recordings.shared()) {
            // Another node's (redis engine): its owner applies them at its next pass.
            (Err(e), Some(registry)) if e.code == ErrorCode::RecordingNotFound => {
                Box::pin(registry.update(ctx.pid, &self.sid, &lists)).await?;
            }
            (local, _) => local?,
        }
        Ok(Empty {})
    }
}
