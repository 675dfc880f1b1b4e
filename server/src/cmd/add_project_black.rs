//! `addprojectblack {uid, btime}` → `{}`: the project-wide block list;
//! `btime` ≤ 0 blocks permanently.

use rtm_protocol::methods::{AddProjectBlack, Empty};

use super::add_room_ban::expiry;
use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::model::{BanScope, UserKey};

impl Handler for AddProjectBlack {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.ban(ctx.pid, BanScope::ProjectBlack, self.uid, expiry(ctx.now_ms, self.btime)).await?;
        // A blocked user's sessions end now, not at their next login.
        ctx.engine.kick(UserKey { pid: ctx.pid, uid: self.uid }).await?;
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;

    #[test]
    fn block_list_is_separate_from_room_bans() {
        let state = Engine::default();
        run(&state, Command::AddProjectBlack, json!({"uid": 3, "btime": 0})).unwrap();
        assert_eq!(run(&state, Command::IsProjectBlack, json!({"uid": 3})).unwrap(), json!({"ok": true}));
        assert_eq!(run(&state, Command::IsBanOfRoom, json!({"rid": 7, "uid": 3})).unwrap(), json!({"ok": false}));
    }
}
