//! `isbanofroom {rid, uid}` → `{ok}`: true while a ban in this room or in
//! every room of the project is in force.

use rtm_protocol::methods::{IsBanOfRoom, OkAnswer};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for IsBanOfRoom {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<OkAnswer, RtmError> {
        Ok(OkAnswer { ok: ctx.engine.is_banned_in_room(ctx.pid, self.rid, self.uid, ctx.now_ms) })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;

    #[test]
    fn all_rooms_ban_counts_in_any_room() {
        let state = Engine::default();
        assert_eq!(run(&state, Command::IsBanOfRoom, json!({"rid": 7, "uid": 3})).unwrap(), json!({"ok": false}));
        run(&state, Command::AddRoomBan, json!({"rid": -1, "uid": 3, "btime": 30})).unwrap();
        assert_eq!(run(&state, Command::IsBanOfRoom, json!({"rid": 99, "uid": 3})).unwrap(), json!({"ok": true}));
    }
}
