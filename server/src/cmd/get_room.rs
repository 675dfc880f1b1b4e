//! `getroom {rid}` → every attribute of a room, scheduled or implicit.

use rtm_protocol::methods::{GetRoom, RoomDetails};
use rtm_protocol::ErrorCode;

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for GetRoom {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RoomDetails, RtmError> {
        ctx.touch(self.rid);
        room_details(ctx, self.rid)
            .ok_or_else(|| RtmError::new(ErrorCode::InvalidParameter, format!("room {} does not exist", self.rid)))
    }
}

/// A room as `getroom` reports it (without counting as an operation on it).
pub(super) fn room_details(ctx: &CmdContext<'_>, rid: i64) -> Option<RoomDetails> {
    let key = ctx.room(rid);
    if !ctx.engine.room_exists(key) {
        return None;
    }
    let (oinfo, pinfo) = ctx.engine.room_info(key);
    let member_count = ctx.engine.member_count(key) as i64;
    let details = RoomDetails { rid, member_count, oinfo, pinfo, ..RoomDetails::default() };
    Some(match ctx.engine.schedule(key) {
        Some(s) => RoomDetails {
            scheduled: true,
            valid_from: s.valid_from_ms / 1000,
            valid_until: s.valid_until_ms / 1000,
            max_seconds: s.max_seconds.into(),
            release_threshold: s.release_threshold.into(),
            idle_seconds: s.idle_seconds.into(),
            auto_extend: s.auto_extend,
            begin_time: s.begin_ms / 1000,
            state: s.phase(ctx.now_ms).to_owned(),
            ..details
        },
        None => RoomDetails { state: "open".to_owned(), ..details },
    })
}

#[cfg(test)]
mod tests {
    use rtm_protocol::ErrorCode;
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;

    #[test]
    fn reports_a_scheduled_room_and_when_it_began() {
        let state = Engine::default();
        run(&state, Command::CreateRoom, json!({"rid": 9, "max_seconds": 60, "oinfo": "o"})).unwrap();
        let room = run(&state, Command::GetRoom, json!({"rid": 9})).unwrap();
        assert_eq!((room["scheduled"].clone(), room["state"].clone()), (json!(true), json!("open")));
        assert_eq!((room["max_seconds"].clone(), room["oinfo"].clone()), (json!(60), json!("o")));
        assert_eq!(room["begin_time"], 0);
        run(&state, Command::AddRoomMembers, json!({"rid": 9, "uids": [1, 2]})).unwrap();
        let room = run(&state, Command::GetRoom, json!({"rid": 9})).unwrap();
        assert_eq!(room["state"], "active");
        assert_eq!(room["member_count"], 2);
        assert!(room["begin_time"].as_i64().unwrap() > 1_600_000_000);
    }

    #[test]
    fn implicit_rooms_have_no_schedule_and_unknown_rooms_are_an_error() {
        let state = Engine::default();
        run(&state, Command::AddRoomMember, json!({"rid": 4, "uid": 1})).unwrap();
        let room = run(&state, Command::GetRoom, json!({"rid": 4})).unwrap();
        assert_eq!((room["scheduled"].clone(), room["valid_until"].clone()), (json!(false), json!(0)));
        assert_eq!(run(&state, Command::GetRoom, json!({"rid": 5})).unwrap_err().code, ErrorCode::InvalidParameter);
    }
}
