//! `removetoken {uid}` → `{}`: every token issued to `uid` until now stops
//! working for new logins (sessions already logged in stay: see `kickout`).
//! Durable: it survives a restart.

use rtm_protocol::methods::{Empty, RemoveToken};

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::model::UserKey;

impl Handler for RemoveToken {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.revoke_tokens(UserKey { pid: ctx.pid, uid: self.uid }, ctx.now_ms).await?;
        Ok(Empty {})
    }
}
