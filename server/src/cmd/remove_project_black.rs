//! `removeprojectblack {uid}` → `{}`.

use rtm_protocol::methods::{Empty, RemoveProjectBlack};

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::model::BanScope;

impl Handler for RemoveProjectBlack {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.unban(ctx.pid, BanScope::ProjectBlack, self.uid).await?;
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
    fn unblocks() {
        let state = Engine::default();
        run(&state, Command::AddProjectBlack, json!({"uid": 3, "btime": 100})).unwrap();
        run(&state, Command::RemoveProjectBlack, json!({"uid": 3})).unwrap();
        assert_eq!(run(&state, Command::IsProjectBlack, json!({"uid": 3})).unwrap(), json!({"ok": false}));
    }
}
