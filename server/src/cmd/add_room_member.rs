//! `addroommember {rid, uid}` → `{}`.

use rtm_protocol::methods::{AddRoomMember, Empty};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for AddRoomMember {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.admit(ctx.room(self.rid), vec![self.uid], ctx.now_ms).await?;
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;
    use crate::model::RoomKey;

    #[test]
    fn adds_and_is_idempotent() {
        let state = Engine::default();
        for _ in 0..2 {
            assert_eq!(run(&state, Command::AddRoomMember, json!({"rid": 7, "uid": 3})).unwrap(), json!({}));
        }
        assert_eq!(state.members(RoomKey { pid: 1, rid: 7 }), vec![3]);
    }
}
