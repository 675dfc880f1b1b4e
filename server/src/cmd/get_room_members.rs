//! `getroommembers {rid}` → `{uids}`, ascending; an unknown room has none.

use rtm_protocol::methods::{GetRoomMembers, RoomMembers};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for GetRoomMembers {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RoomMembers, RtmError> {
        ctx.touch(self.rid);
        Ok(RoomMembers { uids: ctx.engine.members(ctx.room(self.rid)) })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;

    #[test]
    fn lists_members_in_order() {
        let state = Engine::default();
        run(&state, Command::AddRoomMembers, json!({"rid": 7, "uids": [9, 1, 5]})).unwrap();
        assert_eq!(run(&state, Command::GetRoomMembers, json!({"rid": 7})).unwrap(), json!({"uids": [1, 5, 9]}));
        assert_eq!(run(&state, Command::GetRoomMembers, json!({"rid": 8})).unwrap(), json!({"uids": []}));
    }
}
