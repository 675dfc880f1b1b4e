//! `keeproomalive {rid}` → `{}`: resets a scheduled room's idle clock.

use rtm_protocol::methods::{Empty, KeepRoomAlive};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for KeepRoomAlive {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.keep_alive(ctx.room(self.rid), ctx.now_ms).await?;
        Ok(Empty {})
    }
}
