//! `isprojectblack {uid}` → `{ok}`.

use rtm_protocol::methods::{IsProjectBlack, OkAnswer};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for IsProjectBlack {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<OkAnswer, RtmError> {
        Ok(OkAnswer { ok: ctx.engine.is_project_black(ctx.pid, self.uid, ctx.now_ms) })
    }
}
