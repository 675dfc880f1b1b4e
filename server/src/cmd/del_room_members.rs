//! `delroommembers {rid, uids}` → `{successedUids}`: every distinct uid that
//! is not a member afterwards.

use rtm_protocol::methods::{DelRoomMembers, SuccessedUids};

use super::{distinct_list, CmdContext, Handler};
use crate::error::RtmError;

impl Handler for DelRoomMembers {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<SuccessedUids, RtmError> {
        let uids = distinct_list("uids", &self.uids, ctx.limits)?;
        ctx.engine.remove(ctx.room(self.rid), uids.clone(), ctx.now_ms).await?;
        Ok(SuccessedUids { successed_uids: uids })
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
    fn removes_the_listed_uids() {
        let state = Engine::default();
        run(&state, Command::AddRoomMembers, json!({"rid": 7, "uids": [1, 2, 3]})).unwrap();
        let answer = run(&state, Command::DelRoomMembers, json!({"rid": 7, "uids": [1, 3, 9]})).unwrap();
        assert_eq!(answer, json!({"successedUids": [1, 3, 9]}));
        assert_eq!(state.members(RoomKey { pid: 1, rid: 7 }), vec![2]);
    }
}
