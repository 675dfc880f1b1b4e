//! `keeproomalive {rid}` → `{}`: resets a scheduled room's idle clock.

use rtm_protocol::methods::{Empty, KeepRoomAlive};
use rtm_protocol::ErrorCode;

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::state::RoomKey;

impl Handler for KeepRoomAlive {
    fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        if !ctx.state.room_exists(RoomKey { pid: ctx.pid, rid: self.rid }) {
            return Err(RtmError::new(ErrorCode::InvalidParameter, format!("room {} does not exist", self.rid)));
        }
        ctx.touch(self.rid);
        Ok(Empty {})
    }
}
