//! `updaterecording {sid, uids?, exclude_uids?}` → `{}`: changes whom a
//! running recording records, from the next message it reads.

use rtm_protocol::methods::{Empty, UpdateRecording};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for UpdateRecording {
    fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.recordings.update(ctx.pid, &self.sid, self.uids, self.exclude_uids, ctx.now_ms)?;
        Ok(Empty {})
    }
}
