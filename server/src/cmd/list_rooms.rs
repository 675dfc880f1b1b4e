//! `listrooms {cursor?, limit?}` → `{rooms: [room], more, next_cursor}`:
//! the project's scheduled rooms in ascending rid order, a page at a time,
//! each as `getroom` reports it.
//!
//! Paging is by key, not by offset: a page starts after the previous page's
//! last rid. So a room that exists from the first page to the last is listed
//! exactly once however many rooms are created or deleted meanwhile; rooms
//! created or deleted during the walk may or may not appear.

use rtm_protocol::methods::{ListRooms, RoomPage};

use super::get_room::room_details;
use super::{page_limit, CmdContext, Handler};
use crate::error::RtmError;

impl Handler for ListRooms {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<RoomPage, RtmError> {
        let limit = page_limit(self.limit)?;
        let (rids, more) = ctx.engine.scheduled_rooms_page(ctx.pid, self.cursor, limit);
        let next_cursor = rids.last().copied().unwrap_or(0);
        // A room released since the index was read is left out.
        let rooms = rids.into_iter().filter_map(|rid| room_details(ctx, rid)).collect();
        Ok(RoomPage { rooms, more, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;

    #[test]
    fn pages_in_rid_order() {
        let state = Engine::default();
        for rid in [30, 10, 20] {
            run(&state, Command::CreateRoom, json!({"rid": rid})).unwrap();
        }
        run(&state, Command::AddRoomMember, json!({"rid": 15, "uid": 1})).unwrap();
        let first = run(&state, Command::ListRooms, json!({"limit": 2})).unwrap();
        let rids: Vec<_> = first["rooms"].as_array().unwrap().iter().map(|r| r["rid"].as_i64().unwrap()).collect();
        assert_eq!(rids, vec![10, 20], "implicit rooms are not listed");
        assert_eq!((first["more"].clone(), first["next_cursor"].clone()), (json!(true), json!(20)));
        let second = run(&state, Command::ListRooms, json!({"limit": 2, "cursor": 20})).unwrap();
        assert_eq!(second["rooms"][0]["rid"], 30);
        assert_eq!(second["more"], false);
    }
}
