//! `addroommembers {rid, uids}` → `{successedUids}`.
//!
//! `successedUids` lists every distinct uid that is a member afterwards,
//! including those that already were: the call is idempotent, so a retry
//! reports the same success.

use rtm_protocol::methods::{AddRoomMembers, SuccessedUids};

use super::{distinct_list, CmdContext, Handler};
use crate::error::RtmError;

impl Handler for AddRoomMembers {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<SuccessedUids, RtmError> {
        let uids = distinct_list("uids", &self.uids, ctx.limits)?;
        ctx.engine.admit(ctx.room(self.rid), uids.clone(), ctx.now_ms).await?;
        Ok(SuccessedUids { successed_uids: uids })
    }
}

#[cfg(test)]
mod tests {
    use rtm_protocol::ErrorCode;
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;
    use crate::model::RoomKey;

    #[test]
    fn adds_distinct_uids_and_reports_them() {
        let state = Engine::default();
        let answer = run(&state, Command::AddRoomMembers, json!({"rid": 7, "uids": [5, 2, 5]})).unwrap();
        assert_eq!(answer, json!({"successedUids": [5, 2]}));
        assert_eq!(state.members(RoomKey { pid: 1, rid: 7 }), vec![2, 5]);
    }

    #[test]
    fn empty_and_oversized_lists_are_refused() {
        let state = Engine::default();
        let err = run(&state, Command::AddRoomMembers, json!({"rid": 7, "uids": []})).unwrap_err();
        assert_eq!(err.code, ErrorCode::EmptyParameter);
        let many: Vec<i64> = (0..101).collect();
        let err = run(&state, Command::AddRoomMembers, json!({"rid": 7, "uids": many})).unwrap_err();
        assert_eq!(err.code, ErrorCode::TooManyItemsInParameters);
        assert_eq!(state.member_count(RoomKey { pid: 1, rid: 7 }), 0);
    }
}
