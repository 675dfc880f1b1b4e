//! `getroominfo {rid}` → `{oinfo, pinfo}`: `pinfo` only for a member of the
//! room (others get `""`: private info is for the room's members).

use rtm_protocol::client::GetRoomInfo;
use rtm_protocol::methods::RoomInfo;

use super::{ClientContext, ClientHandler};
use crate::error::RtmError;

impl ClientHandler for GetRoomInfo {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<RoomInfo, RtmError> {
        let room = ctx.room(self.rid);
        let (oinfo, pinfo) = ctx.engine.room_info(room);
        let pinfo = if ctx.engine.is_member(room, ctx.user.uid) { pinfo } else { String::new() };
        Ok(RoomInfo { oinfo, pinfo })
    }
}
