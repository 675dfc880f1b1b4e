//! `removeprojectblack {uid}` → `{}`.

use rtm_protocol::methods::{Empty, RemoveProjectBlack};

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::state::{BanScope, Mutation};

impl Handler for RemoveProjectBlack {
    fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.state.apply(Mutation::RemoveBan { pid: ctx.pid, scope: BanScope::ProjectBlack, uid: self.uid });
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::state::State;

    #[test]
    fn unblocks() {
        let state = State::default();
        run(&state, Command::AddProjectBlack, json!({"uid": 3, "btime": 100})).unwrap();
        run(&state, Command::RemoveProjectBlack, json!({"uid": 3})).unwrap();
        assert_eq!(run(&state, Command::IsProjectBlack, json!({"uid": 3})).unwrap(), json!({"ok": false}));
    }
}
