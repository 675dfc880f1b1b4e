//! `*ping {}` → `{ts}`: the server's clock in milliseconds. No auth needed.

use rtm_protocol::methods::{Ping, PingAnswer};

use super::{CmdContext, Handler};
use crate::error::RtmError;

impl Handler for Ping {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<PingAnswer, RtmError> {
        Ok(PingAnswer { ts: ctx.now_ms })
    }
}
