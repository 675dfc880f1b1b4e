//! `adduserrooms {rids, uid}` → `{}`: one user into several rooms.

use rtm_protocol::methods::{AddUserRooms, Empty};

use super::{distinct_list, CmdContext, Handler};
use crate::error::RtmError;

impl Handler for AddUserRooms {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        let rids = distinct_list("rids", &self.rids, ctx.limits)?;
        // Room by room, so a scheduled room outside its window refuses
        // before any later room is joined; earlier ones stay joined.
        for rid in rids {
            ctx.engine.admit(ctx.room(rid), vec![self.uid], ctx.now_ms).await?;
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
    fn joins_every_listed_room() {
        let state = Engine::default();
        run(&state, Command::AddUserRooms, json!({"rids": [7, 8], "uid": 3})).unwrap();
        assert_eq!(state.members(RoomKey { pid: 1, rid: 7 }), vec![3]);
        assert_eq!(state.members(RoomKey { pid: 1, rid: 8 }), vec![3]);
    }
}
