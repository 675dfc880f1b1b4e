//! `gettoken {uid, version?}` → `{token}`: a login token for user `uid`
//! (see `auth/tokens.rs`). Valid for `sessions.token_lifetime_secs`, for
//! every login and relogin, until `removetoken`.

use rtm_protocol::methods::{GetToken, Token};
use rtm_protocol::ErrorCode;

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::model::UserKey;

impl Handler for GetToken {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Token, RtmError> {
        let revoked_at = ctx.engine.tokens_revoked_at(UserKey { pid: ctx.pid, uid: self.uid });
        let token = ctx.tokens.issue(ctx.pid, self.uid, ctx.now_ms, revoked_at).ok_or_else(|| {
            RtmError::new(ErrorCode::InvalidPidOrSign, format!("project {} is not configured", ctx.pid))
        })?;
        Ok(Token { token })
    }
}
