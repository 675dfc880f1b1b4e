//! `getroomopeninfo {rid}` → `{oinfo}`: a room's public info, for anyone.

use rtm_protocol::client::{GetRoomOpenInfo, RoomOpenInfo};

use super::{ClientContext, ClientHandler};
use crate::error::RtmError;

impl ClientHandler for GetRoomOpenInfo {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<RoomOpenInfo, RtmError> {
        Ok(RoomOpenInfo { oinfo: ctx.engine.room_info(ctx.room(self.rid)).0 })
    }
}
