//! `deleteroom {rid}` → `{}`: releases the room, scheduled or implicit:
//! its members, info and policies are gone. Bans stay (they are per user).

use rtm_protocol::methods::{DeleteRoom, Empty};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for DeleteRoom {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.delete_room(ctx.room(self.rid)).await?;
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;

    #[test]
    fn releases_everything_but_bans() {
        let state = Engine::default();
        run(&state, Command::CreateRoom, json!({"rid": 6, "oinfo": "o"})).unwrap();
        run(&state, Command::AddRoomMembers, json!({"rid": 6, "uids": [1, 2]})).unwrap();
        run(&state, Command::AddRoomBan, json!({"rid": 6, "uid": 1, "btime": 0})).unwrap();
        run(&state, Command::DeleteRoom, json!({"rid": 6})).unwrap();
        assert_eq!(run(&state, Command::RoomExists, json!({"rid": 6})).unwrap(), json!({"ok": false}));
        assert_eq!(state.stats().1, 0, "memberships are released");
        assert_eq!(run(&state, Command::IsBanOfRoom, json!({"rid": 6, "uid": 1})).unwrap(), json!({"ok": true}));
        run(&state, Command::DeleteRoom, json!({"rid": 6})).unwrap();
    }
}
