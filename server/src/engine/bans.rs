//! Bans (mutes) and the project block list.

use super::Engine;
use crate::model::{BanScope, Mutation};

impl Engine {
    /// Adds or replaces a ban; `expires_at_ms` is absolute, `None` permanent.
    pub(crate) fn ban(&self, pid: i64, scope: BanScope, uid: i64, expires_at_ms: Option<i64>) {
        self.commit().apply(Mutation::AddBan { pid, scope, uid, expires_at_ms });
    }

    /// Lifts a ban.
    pub(crate) fn unban(&self, pid: i64, scope: BanScope, uid: i64) {
        self.commit().apply(Mutation::RemoveBan { pid, scope, uid });
    }
}
