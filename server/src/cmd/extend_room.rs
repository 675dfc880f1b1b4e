//! `extendroom {rid, auto?, minutes?}` → `{valid_until, auto_extend}`.
//!
//! Pushes the end of a scheduled room out by `minutes` (default 15). `auto`
//! turns automatic extension on or off; given without `minutes`, it leaves
//! the end where it is. With automatic extension, a room that reaches its
//! end while it still has members is extended by 15 minutes instead.

use rtm_protocol::methods::{ExtendRoom, ExtendedRoom};
use rtm_protocol::ErrorCode;

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::state::{Mutation, RoomKey};

/// The default extension, minutes.
const DEFAULT_MINUTES: i64 = 15;

impl Handler for ExtendRoom {
    fn apply(self, ctx: &CmdContext<'_>) -> Result<ExtendedRoom, RtmError> {
        let invalid = |ex: String| RtmError::new(ErrorCode::InvalidParameter, ex);
        let Some(schedule) = ctx.state.schedule(RoomKey { pid: ctx.pid, rid: self.rid }) else {
            return Err(invalid(format!("room {} is not a scheduled room (create it with createroom)", self.rid)));
        };
        let minutes = match (self.minutes, self.auto) {
            (Some(m), _) if m <= 0 => return Err(invalid(format!("'minutes' must be positive, got {m}"))),
            (Some(m), _) => m,
            (None, Some(_)) => 0,
            (None, None) => DEFAULT_MINUTES,
        };
        let valid_until_ms = schedule.valid_until_ms.saturating_add(minutes.saturating_mul(60_000));
        let auto_extend = self.auto.unwrap_or(schedule.auto_extend);
        ctx.touch(self.rid);
        ctx.state.apply(Mutation::ExtendRoom { pid: ctx.pid, rid: self.rid, valid_until_ms, auto_extend });
        Ok(ExtendedRoom { valid_until: valid_until_ms / 1000, auto_extend })
    }
}

#[cfg(test)]
mod tests {
    use rtm_protocol::ErrorCode;
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::state::State;

    #[test]
    fn extends_by_fifteen_minutes_or_as_asked() {
        let state = State::default();
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
        let state = State::default();
        run(&state, Command::AddRoomMember, json!({"rid": 2, "uid": 1})).unwrap();
        assert_eq!(run(&state, Command::ExtendRoom, json!({"rid": 2})).unwrap_err().code, ErrorCode::InvalidParameter);
        run(&state, Command::CreateRoom, json!({"rid": 3})).unwrap();
        let err = run(&state, Command::ExtendRoom, json!({"rid": 3, "minutes": 0})).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameter);
    }
}
