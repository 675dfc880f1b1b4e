//! Expiring bans: room bans, all-rooms bans and the project block list.
//!
//! Each ban is one map entry holding its absolute expiry. Expiry is checked
//! on every read, so a ban ends exactly on time; separately a deadline index
//! (a B-tree ordered by expiry) lets one purge task drop expired bans from
//! memory, so memory does not grow with bans that have run out.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::model::BanKey;

/// Expiry of a permanent ban.
const PERMANENT: i64 = i64::MAX;

/// How long the purge task sleeps when no ban is due.
const IDLE_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug, Default)]
pub(crate) struct Bans {
    /// Expiry in Unix milliseconds, [`PERMANENT`] for no expiry.
    active: DashMap<BanKey, i64>,
    /// `(expiry, key)` of every expiring ban.
    deadlines: Mutex<BTreeSet<(i64, BanKey)>>,
    /// Wakes the purge task when a ban earlier than all others is added.
    wake: Notify,
}

impl Bans {
    /// Adds or replaces a ban; `expires_at_ms` `None` is permanent.
    pub(crate) fn add(&self, key: BanKey, expires_at_ms: Option<i64>) {
        let expiry = expires_at_ms.unwrap_or(PERMANENT);
        let previous = self.active.insert(key, expiry);
        let mut deadlines = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = previous.filter(|&old| old != PERMANENT) {
            deadlines.remove(&(old, key));
        }
        if expiry != PERMANENT {
            let earliest = deadlines.first().is_none_or(|&(first, _)| expiry < first);
            deadlines.insert((expiry, key));
            drop(deadlines);
            if earliest {
                self.wake.notify_one();
            }
        }
    }

    /// Lifts a ban; returns whether one was active.
    pub(crate) fn remove(&self, key: &BanKey, now_ms: i64) -> bool {
        let Some((_, expiry)) = self.active.remove(key) else {
            return false;
        };
        if expiry != PERMANENT {
            self.deadlines.lock().unwrap_or_else(|e| e.into_inner()).remove(&(expiry, *key));
        }
        expiry > now_ms
    }

    /// Whether the ban is in force at `now_ms`.
    /// A ban's expiry ([`i64::MAX`] for permanent), active or not yet purged.
    pub(crate) fn expiry(&self, key: &BanKey) -> Option<i64> {
        self.active.get(key).map(|expiry| *expiry)
    }

    pub(crate) fn is_active(&self, key: &BanKey, now_ms: i64) -> bool {
        self.active.get(key).is_some_and(|expiry| *expiry > now_ms)
    }

    /// Every ban held, with its expiry ([`i64::MAX`] for permanent).
    pub(crate) fn export(&self) -> Vec<(BanKey, i64)> {
        self.active.iter().map(|entry| (*entry.key(), *entry.value())).collect()
    }

    /// Bans held in memory (active, or expired and not yet purged).
    pub(crate) fn len(&self) -> usize {
        self.active.len()
    }

    /// Drops every ban whose expiry is at or before `now_ms`; returns the
    /// bans dropped and the next deadline.
    pub(crate) fn purge_expired(&self, now_ms: i64) -> (Vec<(BanKey, i64)>, Option<i64>) {
        let mut purged = Vec::new();
        loop {
            let due: Vec<(i64, BanKey)> = {
                let mut deadlines = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
                let mut due = Vec::new();
                while due.len() < 1024 {
                    match deadlines.first() {
                        Some(&(expiry, _)) if expiry <= now_ms => due.extend(deadlines.pop_first()),
                        _ => break,
                    }
                }
                due
            };
            if due.is_empty() {
                break;
            }
            for (expiry, key) in due {
                // The ban may have been replaced since; only drop this one.
                if self.active.remove_if(&key, |_, &current| current == expiry).is_some() {
                    purged.push((key, expiry));
                }
            }
        }
        let next = self.deadlines.lock().unwrap_or_else(|e| e.into_inner()).first().map(|&(e, _)| e);
        (purged, next)
    }

    /// Purges expired bans at their deadlines until `token` is cancelled,
    /// handing each batch of expired bans to `on_expired`.
    pub(crate) async fn purge_task(
        self: Arc<Self>,
        token: CancellationToken,
        on_expired: impl Fn(&[(BanKey, i64)]) + Send,
    ) {
        loop {
            let now = now_ms();
            let (purged, next) = self.purge_expired(now);
            if !purged.is_empty() {
                tracing::debug!(purged = purged.len(), "expired bans purged");
                on_expired(&purged);
            }
            let sleep = next.map_or(IDLE_PURGE_INTERVAL, |at| Duration::from_millis((at - now).max(1) as u64));
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
                _ = token.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BanScope;

    fn purged(bans: &Bans, now_ms: i64) -> (usize, Option<i64>) {
        let (purged, next) = bans.purge_expired(now_ms);
        (purged.len(), next)
    }

    fn key(uid: i64) -> BanKey {
        BanKey { pid: 1, scope: BanScope::Room(7), uid }
    }

    #[test]
    fn a_ban_ends_exactly_at_its_expiry() {
        let bans = Bans::default();
        bans.add(key(1), Some(1_000));
        assert!(bans.is_active(&key(1), 999));
        assert!(!bans.is_active(&key(1), 1_000));
    }

    #[test]
    fn permanent_bans_never_expire_and_are_not_indexed() {
        let bans = Bans::default();
        bans.add(key(1), None);
        assert!(bans.is_active(&key(1), i64::MAX - 1));
        assert_eq!(purged(&bans, i64::MAX - 1), (0, None));
    }

    #[test]
    fn purge_frees_expired_bans_only() {
        let bans = Bans::default();
        bans.add(key(1), Some(100));
        bans.add(key(2), Some(200));
        bans.add(key(3), None);
        assert_eq!(purged(&bans, 150), (1, Some(200)));
        assert_eq!(bans.len(), 2);
        assert_eq!(purged(&bans, 200), (1, None));
        assert_eq!(bans.len(), 1);
    }

    #[test]
    fn replacing_a_ban_moves_its_deadline() {
        let bans = Bans::default();
        bans.add(key(1), Some(100));
        bans.add(key(1), Some(500));
        assert_eq!(purged(&bans, 150), (0, Some(500)));
        assert!(bans.is_active(&key(1), 150));
        bans.add(key(1), None);
        assert_eq!(purged(&bans, 600), (0, None));
        assert!(bans.is_active(&key(1), 600));
    }

    #[test]
    fn remove_clears_the_index_too() {
        let bans = Bans::default();
        bans.add(key(1), Some(100));
        assert!(bans.remove(&key(1), 50));
        assert!(!bans.remove(&key(1), 50));
        assert_eq!(purged(&bans, 1_000), (0, None));
    }

    #[tokio::test]
    async fn purge_task_wakes_for_an_earlier_ban() {
        let bans = Arc::new(Bans::default());
        let token = CancellationToken::new();
        let task = tokio::spawn(bans.clone().purge_task(token.clone(), |_| {}));
        bans.add(key(1), Some(now_ms() + 3_600_000));
        bans.add(key(2), Some(now_ms() + 50));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(bans.len(), 1, "the short ban was purged without waiting for the long one");
        token.cancel();
        task.await.unwrap();
    }
}
