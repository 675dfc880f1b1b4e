//! `deleteuserrooms {rids, uid}` → `{}`: one user out of several rooms.

use rtm_protocol::methods::{DeleteUserRooms, Empty};

use super::{distinct_list, CmdContext, Handler};
use crate::error::RtmError;

impl Handler for DeleteUserRooms {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        let rids = distinct_list("rids", &self.rids, ctx.limits)?;
        for rid in rids {
            ctx.engine.remove(ctx.room(rid), vec![self.uid], ctx.now_ms).await?;
        }
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
    fn leaves_every_listed_room() {
        let state = Engine::default();
        run(&state, Command::AddUserRooms, json!({"rids": [7, 8, 9], "uid": 3})).unwrap();
        run(&state, Command::DeleteUserRooms, json!({"rids": [7, 9], "uid": 3})).unwrap();
        assert_eq!(state.member_count(RoomKey { pid: 1, rid: 7 }), 0);
        assert_eq!(state.members(RoomKey { pid: 1, rid: 8 }), vec![3]);
    }
}
