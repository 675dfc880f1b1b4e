//! `upsertroommembers {rid, members: [{uid, role}]}` → `{}`: adds members
//! with roles, or changes the role of members already in the room (the
//! conference API's `add_or_update_participants`). A new role resets the
//! member's mode to the role's default (consumer = receive only).

use rtm_protocol::methods::{Empty, UpsertRoomMembers};
use rtm_protocol::ErrorCode;

use super::{bounded_list, convert, CmdContext, Handler};
use crate::error::RtmError;

impl Handler for UpsertRoomMembers {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        if self.members.is_empty() {
            return Err(RtmError::new(ErrorCode::EmptyParameter, "parameter 'members' must not be empty"));
        }
        bounded_list("members", self.members.len(), ctx.limits)?;
        // The last role given for a uid wins.
        let mut members = self.members;
        members.reverse();
        let mut seen = std::collections::HashSet::new();
        members.retain(|m| seen.insert(m.uid));
        members.reverse();
        let members = members.into_iter().map(convert::member_role).collect();
        ctx.engine.upsert_members(ctx.room(self.rid), members, ctx.now_ms).await?;
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
    fn adds_and_updates_roles() {
        let state = Engine::default();
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
        let state = Engine::default();
        let code = |params| run(&state, Command::UpsertRoomMembers, params).unwrap_err().code;
        assert_eq!(code(json!({"rid": 7, "members": []})), ErrorCode::EmptyParameter);
        assert_eq!(code(json!({"rid": 7, "members": [{"uid": 1, "role": "king"}]})), ErrorCode::ProtoTypeConvert);
        run(&state, Command::CreateRoom, json!({"rid": 8, "valid_from": 4_000_000_000i64})).unwrap();
        assert_eq!(code(json!({"rid": 8, "members": [{"uid": 1}]})), ErrorCode::PermissionDenied);
    }
}
