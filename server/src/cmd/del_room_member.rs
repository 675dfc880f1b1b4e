//! `delroommember {rid, uid}` → `{}`. Removing a non-member is not an error.

use rtm_protocol::methods::{DelRoomMember, Empty};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for DelRoomMember {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.remove(ctx.room(self.rid), vec![self.uid], ctx.now_ms).await?;
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
    fn removes_and_tolerates_non_members() {
        let state = Engine::default();
        run(&state, Command::AddRoomMember, json!({"rid": 7, "uid": 3})).unwrap();
        run(&state, Command::DelRoomMember, json!({"rid": 7, "uid": 3})).unwrap();
        run(&state, Command::DelRoomMember, json!({"rid": 7, "uid": 3})).unwrap();
        assert_eq!(state.members(RoomKey { pid: 1, rid: 7 }), Vec::<i64>::new());
    }
}
