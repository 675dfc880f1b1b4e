//! `getroomcount {rids}` (or the C++ SDK's `{rid}`) → `{cn: {"<rid>": n}}`.

use rtm_protocol::methods::{GetRoomCount, RoomCounts};
use rtm_protocol::ErrorCode;

use super::{distinct_list, CmdContext, Handler};
use crate::error::RtmError;

impl Handler for GetRoomCount {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RoomCounts, RtmError> {
        let rids = match (self.rids, self.rid) {
            (Some(rids), _) => distinct_list("rids", &rids, ctx.limits)?,
            (None, Some(rid)) => vec![rid],
            (None, None) => return Err(RtmError::new(ErrorCode::ProtoKeyNotFound, "missing parameter 'rids'")),
        };
        let cn = rids
            .into_iter()
            .map(|rid| {
                let count = ctx.engine.member_count(ctx.room(rid));
                (rid, i32::try_from(count).unwrap_or(i32::MAX))
            })
            .collect();
        Ok(RoomCounts { cn })
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
    fn counts_many_rooms_with_string_keys() {
        let state = Engine::default();
        run(&state, Command::AddRoomMembers, json!({"rid": 7001, "uids": [1, 2]})).unwrap();
        let answer = run(&state, Command::GetRoomCount, json!({"rids": [7001, 7002, 7001]})).unwrap();
        assert_eq!(answer, json!({"cn": {"7001": 2, "7002": 0}}));
    }

    #[test]
    fn accepts_the_single_rid_form() {
        let state = Engine::default();
        run(&state, Command::AddRoomMember, json!({"rid": 5, "uid": 1})).unwrap();
        assert_eq!(run(&state, Command::GetRoomCount, json!({"rid": 5})).unwrap(), json!({"cn": {"5": 1}}));
        let err = run(&state, Command::GetRoomCount, json!({})).unwrap_err();
        assert_eq!(err.code, ErrorCode::ProtoKeyNotFound);
    }
}
