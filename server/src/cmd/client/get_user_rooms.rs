//! `getuserrooms {}` → `{rooms}`: every room the user is in, however it
//! joined (client or server API).

use rtm_protocol::client::{GetUserRooms, UserRooms};

use super::{ClientContext, ClientHandler};
use crate::error::RtmError;

impl ClientHandler for GetUserRooms {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<UserRooms, RtmError> {
        Ok(UserRooms { rooms: ctx.engine.user_rooms(ctx.user) })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cmd::client::test_support::run_as;
    use crate::cmd::client::ClientCommand;
    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;

    #[test]
    fn one_membership_for_both_apis() {
        let engine = Engine::default();
        run_as(&engine, 3, ClientCommand::EnterRoom, json!({"rid": 9})).unwrap();
        run(&engine, Command::AddRoomMember, json!({"rid": 4, "uid": 3})).unwrap();
        assert_eq!(run_as(&engine, 3, ClientCommand::GetUserRooms, json!({})).unwrap(), json!({"rooms": [4, 9]}));
        run(&engine, Command::DelRoomMember, json!({"rid": 9, "uid": 3})).unwrap();
        run_as(&engine, 3, ClientCommand::LeaveRoom, json!({"rid": 4})).unwrap();
        assert_eq!(run_as(&engine, 3, ClientCommand::GetUserRooms, json!({})).unwrap(), json!({"rooms": []}));
    }
}
