//! `leaveroom {rid}` → `{}`: the user leaves the room (no `kickoutroom` to
//! the user; a scheduled room's release threshold applies).

use rtm_protocol::client::LeaveRoom;
use rtm_protocol::methods::Empty;

use super::{ClientContext, ClientHandler};
use crate::error::RtmError;

impl ClientHandler for LeaveRoom {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.leave_room(ctx.user, self.rid, ctx.now_ms).await?;
        ctx.engine.presence().note_room(ctx.user, self.rid, false);
        Ok(Empty {})
    }
}
