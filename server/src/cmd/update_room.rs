//! `updateroom {rid, valid_from?, valid_until?, max_seconds?,
//! release_threshold?, idle_seconds?}` → the room as `getroom` reports it.
//!
//! Changes a scheduled room's window and policies; absent keys keep their
//! value. The same rules as `createroom` apply: the window must end after
//! it starts and must not have ended already. The new deadlines take effect
//! at once (a room whose new `max_seconds` has already passed since it
//! began is released by the deadline task right away).

use rtm_protocol::methods::{RoomDetails, UpdateRoom};
use rtm_protocol::ErrorCode;

use super::get_room::room_details;
use super::{CmdContext, Handler};
use crate::engine::PolicyChange;
use crate::error::RtmError;

impl Handler for UpdateRoom {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RoomDetails, RtmError> {
        let change = PolicyChange {
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            max_seconds: self.max_seconds,
            release_threshold: self.release_threshold,
            idle_seconds: self.idle_seconds,
        };
        Box::pin(ctx.engine.update_room(ctx.room(self.rid), change, ctx.now_ms)).await?;
        room_details(ctx, self.rid)
            .ok_or_else(|| RtmError::new(ErrorCode::InvalidParameter, format!("room {} does not exist", self.rid)))
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
    fn changes_only_what_is_given() {
        let state = Engine::default();
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
