//! `upsertroommembers {rid, members: [{uid, role}]}` → `{}`: adds members
//! with roles, or changes the role of members already in the room (the
//! conference API's `add_or_update_participants`). A new role resets the
//! member's mode to the role's default (consumer = receive only).

use rtm_protocol::methods::{Empty, UpsertRoomMembers};
use rtm_protocol::ErrorCode;

use super::{bounded_list, check_window, CmdContext, Handler};
use crate::error::RtmError;
use crate::state::{Mutation, RoomKey};

impl Handler for UpsertRoomMembers {
    fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        if self.members.is_empty() {
            return Err(RtmError::new(ErrorCode::EmptyParameter, "parameter 'members' must not be empty"));
        }
        bounded_list("members", self.members.len(), ctx.limits)?;
        let key = RoomKey { pid: ctx.pid, rid: self.rid };
        // The last role given for a uid wins.
        let mut members = self.members;
        members.reverse();
        let mut seen = std::collections::HashSet::new();
        members.retain(|m| seen.insert(m.uid));
        members.reverse();
        if members.iter().any(|m| !ctx.state.is_member(key, m.uid)) {
            check_window(ctx, self.rid)?;
        }
        ctx.state.apply(Mutation::UpsertMembers { pid: ctx.pid, rid: self.rid, members, at_ms: ctx.now_ms });
        super::began_and_touched(ctx, self.rid);
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
    fn adds_and_updates_roles() {
        let state = State::default();
        let members = json!([{"uid": 1, "role": "presenter"}, {"uid": 2, "role": "consumer"}, {"uid": 3}]);
        run(&state, Command::UpsertRoomMembers, json!({"rid": 7, "members": members})).unwrap();
        run(&state, Command::UpsertRoomMembers, json!({"rid": 7, "members": [{"uid": 2, "role": "attendee"}]}))
            .unwrap();
        let page = run(&state, Command::ListRoomMembers, json!({"rid": 7})).unwrap();
        let roles: Vec<_> =
            page["members"].as_array().unwrap().iter().map(|m| (m["role"].clone(), m["mode"].clone())).collect();
        assert_eq!(
            roles,
            vec![(json!("presenter"), json!(1)), (json!("attendee"), json!(1)), (json!("attendee"), json!(1))]
        );
        assert!(page["members"][0]["joined_at"].as_i64().unwrap() > 0);
    }

    #[test]
    fn refuses_bad_lists_and_closed_windows() {
        let state = State::default();
        let code = |params| run(&state, Command::UpsertRoomMembers, params).unwrap_err().code;
        assert_eq!(code(json!({"rid": 7, "members": []})), ErrorCode::EmptyParameter);
        assert_eq!(code(json!({"rid": 7, "members": [{"uid": 1, "role": "king"}]})), ErrorCode::ProtoTypeConvert);
        run(&state, Command::CreateRoom, json!({"rid": 8, "valid_from": 4_000_000_000i64})).unwrap();
        assert_eq!(code(json!({"rid": 8, "members": [{"uid": 1}]})), ErrorCode::PermissionDenied);
    }
}
