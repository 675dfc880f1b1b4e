//! `removeroommembers {rid, uids}` → `{}`: removes members with their
//! roles; a scheduled room that falls below its release threshold is
//! released.

use rtm_protocol::methods::{Empty, RemoveRoomMembers};

use super::{distinct_list, CmdContext, Handler};
use crate::error::RtmError;

impl Handler for RemoveRoomMembers {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        let uids = distinct_list("uids", &self.uids, ctx.limits)?;
        ctx.engine.remove(ctx.room(self.rid), uids, ctx.now_ms).await?;
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
    fn removes_members_and_their_roles() {
        let state = Engine::default();
        run(
            &state,
            Command::UpsertRoomMembers,
            json!({"rid": 7, "members": [{"uid": 1, "role": "presenter"}, {"uid": 2}]}),
        )
        .unwrap();
        run(&state, Command::RemoveRoomMembers, json!({"rid": 7, "uids": [1, 9]})).unwrap();
        assert_eq!(state.members(RoomKey { pid: 1, rid: 7 }), vec![2]);
        run(&state, Command::AddRoomMember, json!({"rid": 7, "uid": 1})).unwrap();
        let page = run(&state, Command::ListRoomMembers, json!({"rid": 7})).unwrap();
        assert_eq!(page["members"][0]["role"], "attendee", "the old role left with the member");
    }
}
