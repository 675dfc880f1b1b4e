//! `removeroomban {rid?, uid}` → `{}`; `rid` absent or ≤ 0 lifts the
//! all-rooms ban (a room ban is lifted only by naming its room).

use rtm_protocol::methods::{Empty, RemoveRoomBan};

use super::add_room_ban::room_scope;
use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for RemoveRoomBan {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.unban(ctx.pid, room_scope(self.rid), self.uid).await?;
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
    fn lifts_room_and_all_rooms_bans_separately() {
        let state = Engine::default();
        run(&state, Command::AddRoomBan, json!({"rid": 7, "uid": 3, "btime": 0})).unwrap();
        run(&state, Command::AddRoomBan, json!({"uid": 3, "btime": 0})).unwrap();
        run(&state, Command::RemoveRoomBan, json!({"rid": 7, "uid": 3})).unwrap();
        assert_eq!(run(&state, Command::IsBanOfRoom, json!({"rid": 7, "uid": 3})).unwrap(), json!({"ok": true}));
        run(&state, Command::RemoveRoomBan, json!({"uid": 3})).unwrap();
        assert_eq!(run(&state, Command::IsBanOfRoom, json!({"rid": 7, "uid": 3})).unwrap(), json!({"ok": false}));
    }
}
