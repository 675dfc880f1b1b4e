//! `getroommembers {rid}` → `{uids}`.

use rtm_protocol::client::GetRoomMembers;
use rtm_protocol::methods::RoomMembers;

use super::{ClientContext, ClientHandler};
use crate::error::RtmError;

impl ClientHandler for GetRoomMembers {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<RoomMembers, RtmError> {
        ctx.engine.touch(ctx.room(self.rid), ctx.now_ms);
        Ok(RoomMembers { uids: ctx.engine.members(ctx.room(self.rid)) })
    }
}
