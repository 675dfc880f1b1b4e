//! `stopplayback {rid}` → `{}`: stops room `rid`'s playback (200086 if none);
//! `playback_completed` follows with reason `stopped`.

use rtm_protocol::methods::{Empty, StopPlayback};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for StopPlayback {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.recordings.playbacks.stop(ctx.room(self.rid))?;
        Ok(Empty {})
    }
}
