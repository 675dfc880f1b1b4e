//! `updaterecording {sid, uids?, exclude_uids?}` → `{}`: changes whom a
//! running recording records, from the next message it reads.

use rtm_protocol::methods::{Empty, UpdateRecording};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for UpdateRecording {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        for (key, list) in [("uids", &self.uids), ("exclude_uids", &self.exclude_uids)] {
            super::bounded_list(key, list.as_ref().map_or(0, Vec::len), ctx.limits)?;
        }
        ctx.recordings.update(ctx.pid, &self.sid, self.uids, self.exclude_uids, ctx.now_ms)?;
        Ok(Empty {})
    }
}
