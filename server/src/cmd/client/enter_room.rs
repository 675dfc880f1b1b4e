//! `enterroom {rid}` → `{}`: the user joins the room (the same admission
//! rules as the server API's `addroommember`, plus `limits.max_rooms_per_user`).

use rtm_protocol::client::EnterRoom;
use rtm_protocol::methods::Empty;

use super::{ClientContext, ClientHandler};
use crate::error::RtmError;

impl ClientHandler for EnterRoom {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.enter_room(ctx.user, self.rid, ctx.limits.max_rooms_per_user, ctx.now_ms).await?;
        ctx.engine.presence().note_room(ctx.user, self.rid, true);
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use rtm_protocol::ErrorCode;
    use serde_json::json;

    use crate::cmd::client::test_support::run_as;
    use crate::cmd::client::ClientCommand;
    use crate::engine::Engine;
    use crate::model::RoomKey;

    #[test]
    fn enters_once_and_obeys_the_room_limit() {
        let engine = Engine::default();
        for _ in 0..2 {
            run_as(&engine, 3, ClientCommand::EnterRoom, json!({"rid": 7})).unwrap();
        }
        assert_eq!(engine.members(RoomKey { pid: 1, rid: 7 }), vec![3]);
        for rid in 100..199 {
            run_as(&engine, 3, ClientCommand::EnterRoom, json!({"rid": rid})).unwrap();
        }
        let err = run_as(&engine, 3, ClientCommand::EnterRoom, json!({"rid": 500})).unwrap_err();
        assert_eq!(err.code, ErrorCode::MaxRoomCount);
        run_as(&engine, 3, ClientCommand::EnterRoom, json!({"rid": 7})).expect("a room the user is in is no new room");
    }
}
