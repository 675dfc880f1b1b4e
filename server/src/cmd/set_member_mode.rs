//! `setmembermode {rid, uid, mode}` → `{}`: sets a member's send/receive
//! mode (1 send and receive, 2 send only, 3 receive only, 4 neither).
//! Stored and reported now; messaging and recording will enforce it.

use rtm_protocol::methods::{Empty, SetMemberMode};
use rtm_protocol::ErrorCode;

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::state::{Mutation, RoomKey};

impl Handler for SetMemberMode {
    fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        if !ctx.state.is_member(RoomKey { pid: ctx.pid, rid: self.rid }, self.uid) {
            return Err(RtmError::new(
                ErrorCode::NotInRoom,
                format!("user {} is not a member of room {}", self.uid, self.rid),
            ));
        }
        ctx.state.apply(Mutation::SetMemberMode { pid: ctx.pid, rid: self.rid, uid: self.uid, mode: self.mode });
        ctx.touch(self.rid);
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use rtm_protocol::ErrorCode;
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::state::State;

    #[test]
    fn sets_modes_of_members_only() {
        let state = State::default();
        run(&state, Command::AddRoomMember, json!({"rid": 7, "uid": 1})).unwrap();
        run(&state, Command::SetMemberMode, json!({"rid": 7, "uid": 1, "mode": 2})).unwrap();
        let page = run(&state, Command::ListRoomMembers, json!({"rid": 7})).unwrap();
        assert_eq!(page["members"][0]["mode"], 2);
        let code = |params| run(&state, Command::SetMemberMode, params).unwrap_err().code;
        assert_eq!(code(json!({"rid": 7, "uid": 2, "mode": 2})), ErrorCode::NotInRoom);
        assert_eq!(code(json!({"rid": 7, "uid": 1, "mode": 5})), ErrorCode::ProtoTypeConvert);
    }
}
