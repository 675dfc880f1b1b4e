//! `updateroom {rid, valid_from?, valid_until?, max_seconds?,
//! release_threshold?, idle_seconds?}` → the room as `getroom` reports it.
//!
//! Changes a scheduled room's window and policies; absent keys keep their
//! value. The same rules as `createroom` apply: the window must end after
//! it starts and must not have ended already. The new deadlines take effect
//! at once (a room whose new `max_seconds` has already passed since it
//! began is released by the deadline task right away).

use rtm_protocol::methods::{GetRoom, RoomDetails, UpdateRoom};
use rtm_protocol::ErrorCode;

use super::create_room::non_negative;
use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::state::{Mutation, RoomKey};

impl Handler for UpdateRoom {
    fn apply(self, ctx: &CmdContext<'_>) -> Result<RoomDetails, RtmError> {
        let invalid = |ex: String| RtmError::new(ErrorCode::InvalidParameter, ex);
        let Some(schedule) = ctx.state.schedule(RoomKey { pid: ctx.pid, rid: self.rid }) else {
            return Err(invalid(format!("room {} is not a scheduled room (create it with createroom)", self.rid)));
        };
        let valid_from = self.valid_from.unwrap_or(schedule.valid_from_ms / 1000);
        let valid_until = self.valid_until.unwrap_or(schedule.valid_until_ms / 1000);
        let now_secs = ctx.now_ms.div_euclid(1000);
        if valid_until <= valid_from {
            return Err(invalid(format!("valid_until ({valid_until}) must be after valid_from ({valid_from})")));
        }
        if valid_until <= now_secs {
            return Err(invalid(format!("the window ends at {valid_until}, which is in the past (now {now_secs})")));
        }
        let keep =
            |value: Option<i64>, current: u32, key: &str| non_negative(key, Some(value.unwrap_or(current.into())));
        ctx.state.apply(Mutation::UpdateRoom {
            pid: ctx.pid,
            rid: self.rid,
            valid_from_ms: valid_from.saturating_mul(1000),
            valid_until_ms: valid_until.saturating_mul(1000),
            max_seconds: keep(self.max_seconds, schedule.max_seconds, "max_seconds")?,
            release_threshold: keep(self.release_threshold, schedule.release_threshold, "release_threshold")?,
            idle_seconds: keep(self.idle_seconds, schedule.idle_seconds, "idle_seconds")?,
        });
        ctx.touch(self.rid);
        GetRoom { rid: self.rid }.apply(ctx)
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
    fn changes_only_what_is_given() {
        let state = State::default();
        run(&state, Command::CreateRoom, json!({"rid": 4, "max_seconds": 60, "idle_seconds": 30})).unwrap();
        let room =
            run(&state, Command::UpdateRoom, json!({"rid": 4, "max_seconds": 120, "release_threshold": 2})).unwrap();
        assert_eq!((room["max_seconds"].clone(), room["idle_seconds"].clone()), (json!(120), json!(30)));
        assert_eq!(room["release_threshold"], 2);
        let code = |params| run(&state, Command::UpdateRoom, params).unwrap_err().code;
        assert_eq!(code(json!({"rid": 5})), ErrorCode::InvalidParameter, "not scheduled");
        assert_eq!(code(json!({"rid": 4, "valid_until": 100})), ErrorCode::InvalidParameter);
        assert_eq!(code(json!({"rid": 4, "idle_seconds": -1})), ErrorCode::InvalidParameter);
    }
}
