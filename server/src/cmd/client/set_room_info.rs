//! `setroominfo {rid, oinfo?, pinfo?}` → `{}`: as the server API's, for a
//! member of the room only (200040 otherwise).

use rtm_protocol::client::SetRoomInfo;
use rtm_protocol::methods::Empty;
use rtm_protocol::ErrorCode;

use super::{ClientContext, ClientHandler};
use crate::cmd::set_room_info::check_size;
use crate::error::RtmError;

impl ClientHandler for SetRoomInfo {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<Empty, RtmError> {
        if self.oinfo.is_none() && self.pinfo.is_none() {
            return Err(RtmError::new(ErrorCode::ProtoKeyNotFound, "missing parameter 'oinfo' or 'pinfo'"));
        }
        check_size("oinfo", self.oinfo.as_ref(), ctx.limits)?;
        check_size("pinfo", self.pinfo.as_ref(), ctx.limits)?;
        let room = ctx.room(self.rid);
        if !ctx.engine.is_member(room, ctx.user.uid) {
            return Err(RtmError::new(ErrorCode::NotInRoom, format!("you are not in room {}", self.rid)));
        }
        ctx.engine.set_info(room, self.oinfo, self.pinfo, ctx.now_ms).await?;
        Ok(Empty {})
    }
}
