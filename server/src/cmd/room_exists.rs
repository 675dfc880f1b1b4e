//! `roomexists {rid}` → `{ok}` (the conference API's `exists`).

use rtm_protocol::methods::{OkAnswer, RoomExists};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for RoomExists {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<OkAnswer, RtmError> {
        Ok(OkAnswer { ok: ctx.engine.room_exists(ctx.room(self.rid)) })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;

    #[test]
    fn scheduled_and_implicit_rooms_exist() {
        let state = Engine::default();
        assert_eq!(run(&state, Command::RoomExists, json!({"rid": 1})).unwrap(), json!({"ok": false}));
        run(&state, Command::CreateRoom, json!({"rid": 1})).unwrap();
        run(&state, Command::SetRoomInfo, json!({"rid": 2, "oinfo": "x"})).unwrap();
        assert_eq!(run(&state, Command::RoomExists, json!({"rid": 1})).unwrap(), json!({"ok": true}));
        assert_eq!(run(&state, Command::RoomExists, json!({"rid": 2})).unwrap(), json!({"ok": true}));
    }
}
