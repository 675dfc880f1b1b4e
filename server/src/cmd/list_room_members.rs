//! `listroommembers {rid, cursor?, limit?}` → `{members: [{uid, role, mode,
//! joined_at}], more, next_cursor}`: members in ascending uid order, a page
//! at a time. Pass `next_cursor` back as `cursor` while `more` is true.

use rtm_protocol::methods::{ListRoomMembers, RoomMemberPage};

use super::{convert, page_limit, CmdContext, Handler};
use crate::error::RtmError;

impl Handler for ListRoomMembers {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RoomMemberPage, RtmError> {
        let limit = page_limit(self.limit)?;
        let (page, more) = ctx.engine.participants_page(ctx.room(self.rid), self.cursor, limit);
        let next_cursor = page.last().map_or(0, |m| m.uid);
        let members = page.into_iter().map(|m| convert::room_member(m.uid, m.participant)).collect();
        Ok(RoomMemberPage { members, more, next_cursor })
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
    fn pages_through_members() {
        let state = Engine::default();
        run(&state, Command::AddRoomMembers, json!({"rid": 7, "uids": [5, -3, 9]})).unwrap();
        let first = run(&state, Command::ListRoomMembers, json!({"rid": 7, "limit": 2})).unwrap();
        assert_eq!(first["members"][0], json!({"uid": -3, "role": "attendee", "mode": 1, "joined_at": 0}));
        assert_eq!((first["more"].clone(), first["next_cursor"].clone()), (json!(true), json!(5)));
        let second = run(&state, Command::ListRoomMembers, json!({"rid": 7, "limit": 2, "cursor": 5})).unwrap();
        assert_eq!(second["members"].as_array().unwrap().len(), 1);
        assert_eq!(second["more"], false);
        let empty = run(&state, Command::ListRoomMembers, json!({"rid": 8})).unwrap();
        assert_eq!(empty, json!({"members": [], "more": false, "next_cursor": 0}));
        let err = run(&state, Command::ListRoomMembers, json!({"rid": 7, "limit": 0})).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameter);
    }
}
