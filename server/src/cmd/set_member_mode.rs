//! `setmembermode {rid, uid, mode}` → `{}`: sets a member's send/receive
//! mode (1 send and receive, 2 send only, 3 receive only, 4 neither).

use super::{convert, CmdContext, Handler};
use crate::error::RtmError;
use rtm_protocol::methods::{Empty, SetMemberMode};

impl Handler for SetMemberMode {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.set_member_mode(ctx.room(self.rid), self.uid, convert::mode(self.mode), ctx.now_ms).await?;
        Ok(Empty {})
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
    fn sets_modes_of_members_only() {
        let state = Engine::default();
        run(&state, Command::AddRoomMember, json!({"rid": 7, "uid": 1})).unwrap();
        run(&state, Command::SetMemberMode, json!({"rid": 7, "uid": 1, "mode": 2})).unwrap();
        let page = run(&state, Command::ListRoomMembers, json!({"rid": 7})).unwrap();
        assert_eq!(page["members"][0]["mode"], 2);
        let code = |params| run(&state, Command::SetMemberMode, params).unwrap_err().code;
        assert_eq!(code(json!({"rid": 7, "uid": 2, "mode": 2})), ErrorCode::NotInRoom);
        assert_eq!(code(json!({"rid": 7, "uid": 1, "mode": 5})), ErrorCode::ProtoTypeConvert);
    }
}
