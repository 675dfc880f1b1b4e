//! `getroominfo {rid}` → `{oinfo, pinfo}`, both always present (`""` when unset).

use rtm_protocol::methods::{GetRoomInfo, RoomInfo};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for GetRoomInfo {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RoomInfo, RtmError> {
        ctx.touch(self.rid);
        let (oinfo, pinfo) = ctx.engine.room_info(ctx.room(self.rid));
        Ok(RoomInfo { oinfo, pinfo })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;

    #[test]
    fn unknown_rooms_have_empty_info() {
        let state = Engine::default();
        assert_eq!(run(&state, Command::GetRoomInfo, json!({"rid": 7})).unwrap(), json!({"oinfo": "", "pinfo": ""}));
    }
}
