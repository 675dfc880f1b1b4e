//! `extendroom {rid, auto?, minutes?}` → `{valid_until, auto_extend}`.
//!
//! Pushes the end of a scheduled room out by `minutes` (default 15). `auto`
//! turns automatic extension on or off; given without `minutes`, it leaves
//! the end where it is. With automatic extension, a room that reaches its
//! end while it still has members is extended by 15 minutes instead.

use rtm_protocol::methods::{ExtendRoom, ExtendedRoom};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for ExtendRoom {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<ExtendedRoom, RtmError> {
        let schedule =
            Box::pin(ctx.engine.extend_room(ctx.room(self.rid), self.minutes, self.auto, ctx.now_ms)).await?;
        Ok(ExtendedRoom { valid_until: schedule.valid_until_ms / 1000, auto_extend: schedule.auto_extend })
    }
}

#[cfg(test)]
mod tests {
    use rtm_protocol::ErrorCode;
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;

    #[test]
    fn extends_by_fifteen_minutes_or_as_asked() {
        let state = Engine::default();
        let created = run(&state, Command::CreateRoom, json!({"rid": 1})).unwrap();
        let until = created["valid_until"].as_i64().unwrap();
        let answer = run(&state, Command::ExtendRoom, json!({"rid": 1})).unwrap();
        assert_eq!(answer, json!({"valid_until": until + 900, "auto_extend": false}));
        let answer = run(&state, Command::ExtendRoom, json!({"rid": 1, "minutes": 60})).unwrap();
        assert_eq!(answer["valid_until"], until + 900 + 3600);
        let answer = run(&state, Command::ExtendRoom, json!({"rid": 1, "auto": true})).unwrap();
        assert_eq!(answer, json!({"valid_until": until + 900 + 3600, "auto_extend": true}));
        assert_eq!(run(&state, Command::GetRoom, json!({"rid": 1})).unwrap()["auto_extend"], true);
    }

    #[test]
    fn needs_a_scheduled_room_and_positive_minutes() {
        let state = Engine::default();
        run(&state, Command::AddRoomMember, json!({"rid": 2, "uid": 1})).unwrap();
        assert_eq!(run(&state, Command::ExtendRoom, json!({"rid": 2})).unwrap_err().code, ErrorCode::InvalidParameter);
        run(&state, Command::CreateRoom, json!({"rid": 3})).unwrap();
        let err = run(&state, Command::ExtendRoom, json!({"rid": 3, "minutes": 0})).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameter);
    }
}
