//! `kickout {uid}` → `{}`: every session of `uid` (on every node, in redis
//! mode) gets the
//! oneway `kickout` and is closed. The SDKs do not log in again by
//! themselves after a kickout.

use rtm_protocol::methods::{Empty, Kickout};

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::model::UserKey;

impl Handler for Kickout {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        ctx.engine.kick(UserKey { pid: ctx.pid, uid: self.uid }).await?;
        Ok(Empty {})
    }
}
