//! `addroomban {rid?, uid, btime}` → `{}`.
//!
//! A ban is a mute: for `btime` seconds the user may neither send nor
//! receive in the room (or, with `rid` absent or ≤ 0, in every room of the
//! project). It does not change membership. `btime` ≤ 0 is permanent.

use rtm_protocol::methods::{AddRoomBan, Empty};

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::model::BanScope;

/// A ban's scope from an optional rid: absent or ≤ 0 means every room.
pub(crate) fn room_scope(rid: Option<i64>) -> BanScope {
    match rid {
        Some(rid) if rid > 0 => BanScope::Room(rid),
        _ => BanScope::AllRooms,
    }
}

/// Absolute expiry of a ban of `btime` seconds from `now_ms`; `None` is permanent.
pub(crate) fn expiry(now_ms: i64, btime: i64) -> Option<i64> {
    (btime > 0).then(|| now_ms.saturating_add(btime.saturating_mul(1000)))
}

impl Handler for AddRoomBan {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.ban(ctx.pid, room_scope(self.rid), self.uid, expiry(ctx.now_ms, self.btime)).await?;
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;

    #[test]
    fn scope_and_expiry_rules() {
        assert_eq!(room_scope(Some(7)), BanScope::Room(7));
        assert_eq!(room_scope(Some(0)), BanScope::AllRooms);
        assert_eq!(room_scope(Some(-1)), BanScope::AllRooms);
        assert_eq!(room_scope(None), BanScope::AllRooms);
        assert_eq!(expiry(1_000, 5), Some(6_000));
        assert_eq!(expiry(1_000, 0), None);
        assert_eq!(expiry(1_000, -3), None);
        assert_eq!(expiry(1_000, i64::MAX), Some(i64::MAX));
    }

    #[test]
    fn bans_do_not_change_membership() {
        let state = Engine::default();
        run(&state, Command::AddRoomMember, json!({"rid": 7, "uid": 3})).unwrap();
        run(&state, Command::AddRoomBan, json!({"rid": 7, "uid": 3, "btime": 60})).unwrap();
        assert_eq!(run(&state, Command::IsBanOfRoom, json!({"rid": 7, "uid": 3})).unwrap(), json!({"ok": true}));
        assert_eq!(run(&state, Command::GetRoomMembers, json!({"rid": 7})).unwrap(), json!({"uids": [3]}));
    }
}
