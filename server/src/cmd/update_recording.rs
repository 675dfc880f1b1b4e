//! `updaterecording {sid, uids?, exclude_uids?}` → `{}`: changes whom a
//! running recording records, from the next message it reads.

use rtm_protocol::methods::{Empty, UpdateRecording};

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::recording::shared::SenderLists;

impl Handler for UpdateRecording {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        for (key, list) in [("uids", &self.uids), ("exclude_uids", &self.exclude_uids)] {
            super::bounded_list(key, list.as_ref().map_or(0, Vec::len), ctx.limits)?;
        }
        let lists = SenderLists { uids: self.uids, exclude_uids: self.exclude_uids };
        Box::pin(ctx.recordings.update_anywhere(ctx.pid, &self.sid, lists, ctx.now_ms)).await?;
        Ok(Empty {})
    }
}
