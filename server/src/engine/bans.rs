//! Bans (mutes) and the project block list.

use super::Engine;
use crate::error::RtmError;
use crate::model::{BanScope, Mutation};

impl Engine {
    /// Adds or replaces a ban; `expires_at_ms` is absolute, `None` permanent.
    pub(crate) async fn ban(
        &self,
        pid: i64,
        scope: BanScope,
        uid: i64,
        expires_at_ms: Option<i64>,
    ) -> Result<(), RtmError> {
        if let Some(remote) = self.remote() {
            return Box::pin(remote.ban(pid, scope, uid, expires_at_ms)).await;
        }
        self.commit().apply(Mutation::AddBan { pid, scope, uid, expires_at_ms });
        Ok(())
    }

    /// Lifts a ban.
    pub(crate) async fn unban(&self, pid: i64, scope: BanScope, uid: i64) -> Result<(), RtmError> {
        if let Some(remote) = self.remote() {
            return Box::pin(remote.unban(pid, scope, uid)).await;
        }
        self.commit().apply(Mutation::RemoveBan { pid, scope, uid });
        Ok(())
    }
}
