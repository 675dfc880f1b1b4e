//! Who is online: the logged-in client sessions of each user, and the rooms
//! each user entered as a client.
//!
//! The client gate registers a session here when its `auth` succeeds and
//! removes it when the session ends. Whatever pushes to a user (room
//! messages, kickouts, `kickoutroom`) finds the user's sessions here and
//! offers to their outboxes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use rtm_protocol::Encoding;

use crate::auth::RateLimiter;
use crate::config::MultiLogin;
use crate::model::UserKey;
use crate::outbox::{Offered, OutboxSender, Push};

/// A logged-in client session, as pushers see it.
pub(crate) struct ClientHandle {
    pub(crate) session: u64,
    pub(crate) user: UserKey,
    pub(crate) outbox: OutboxSender,
    /// The encoding of the session's `auth` quest; its pushes use it.
    pub(crate) encoding: Encoding,
    /// The client's address, for `login`/`logout` events.
    pub(crate) endpoint: String,
    /// Redis engine: the partition sequence number of this login's notice
    /// to the other nodes; `u64::MAX` until the notice is applied here. A
    /// kick older than the login (a lagging notice of an earlier login
    /// elsewhere) spares the session.
    pub(crate) login_seq: std::sync::atomic::AtomicU64,
}

impl ClientHandle {
    /// Offers a push; a full outbox closes the session (the pump sees it).
    pub(crate) fn offer(&self, push: Push) -> Offered {
        self.outbox.offer(push)
    }
}

struct User {
    sessions: Vec<Arc<ClientHandle>>,
    /// The user's room messages per second, over all sessions.
    sends: Option<RateLimiter>,
    /// Rooms the user entered as a client (left when the user goes offline
    /// for longer than the relogin grace).
    rooms: BTreeSet<i64>,
    /// Bumped at every login, so a grace timer knows whether the user came
    /// back meanwhile.
    generation: u64,
}

/// Every logged-in client session, by user.
pub(crate) struct Presence {
    users: DashMap<UserKey, User>,
    policy: MultiLogin,
    /// Room messages per second per user; 0 = unlimited.
    sends_per_second: u32,
    /// Logged-in sessions: with none, changes skip every presence lookup.
    online: AtomicUsize,
}

impl Presence {
    pub(crate) fn new(policy: MultiLogin, sends_per_second: u32) -> Self {
        Self { users: DashMap::new(), policy, sends_per_second, online: AtomicUsize::new(0) }
    }

    /// Whether `user` may send one more room message now (a token bucket
    /// of `limits.client_messages_per_second`, one second's burst).
    pub(crate) fn may_send(&self, user: UserKey) -> bool {
        match self.users.get(&user) {
            Some(entry) => entry.sends.as_ref().is_none_or(RateLimiter::try_acquire),
            None => true,
        }
    }

    /// Registers a logged-in session; under the single-login policy,
    /// returns the user's other sessions, to be kicked.
    pub(crate) fn login(&self, handle: Arc<ClientHandle>) -> Vec<Arc<ClientHandle>> {
        let sends_per_second = self.sends_per_second;
        let mut user = self.users.entry(handle.user).or_insert_with(|| User {
            sessions: Vec::new(),
            sends: (sends_per_second > 0).then(|| RateLimiter::new(sends_per_second, 0)),
            rooms: BTreeSet::new(),
            generation: 0,
        });
        user.generation += 1;
        let kicked = match self.policy {
            MultiLogin::Single => std::mem::take(&mut user.sessions),
            MultiLogin::All => Vec::new(),
        };
        user.sessions.push(handle);
        // The kicked sessions are no longer the user's: they close by themselves.
        self.online.fetch_add(1, Ordering::Relaxed);
        self.online.fetch_sub(kicked.len(), Ordering::Relaxed);
        kicked
    }

    /// Removes a session. When it was the user's last, returns the login
    /// generation to pass to [`leave_if_still_offline`](Self::leave_if_still_offline).
    pub(crate) fn logout(&self, user: UserKey, session: u64) -> Option<u64> {
        let mut entry = self.users.get_mut(&user)?;
        let before = entry.sessions.len();
        entry.sessions.retain(|h| h.session != session);
        self.online.fetch_sub(before - entry.sessions.len(), Ordering::Relaxed);
        if !entry.sessions.is_empty() {
            return None;
        }
        let generation = entry.generation;
        let forget = entry.rooms.is_empty();
        drop(entry);
        if forget {
            self.users.remove_if(&user, |_, u| u.sessions.is_empty() && u.rooms.is_empty());
            return None;
        }
        Some(generation)
    }

    /// The rooms a user entered as a client, taken away if the user is still
    /// offline since logging out at `generation` (no login since).
    pub(crate) fn leave_if_still_offline(&self, user: UserKey, generation: u64) -> Vec<i64> {
        let Some(mut entry) = self.users.get_mut(&user) else { return Vec::new() };
        if entry.generation != generation || !entry.sessions.is_empty() {
            return Vec::new();
        }
        let rooms = std::mem::take(&mut entry.rooms).into_iter().collect();
        drop(entry);
        self.users.remove_if(&user, |_, u| u.sessions.is_empty() && u.rooms.is_empty());
        rooms
    }

    /// `user` logged in on another node: if offline here, the relogin grace
    /// ends without leaving the rooms (they are the user's again, wherever
    /// the user is now); this node forgets the user.
    pub(crate) fn back_elsewhere(&self, user: UserKey) {
        self.users.remove_if(&user, |_, u| u.sessions.is_empty());
    }

    /// Notes that a user entered (`true`) or left a room as a client.
    pub(crate) fn note_room(&self, user: UserKey, rid: i64, entered: bool) {
        match self.users.get_mut(&user) {
            Some(mut entry) if entered => {
                entry.rooms.insert(rid);
            }
            Some(mut entry) => {
                entry.rooms.remove(&rid);
            }
            None => {}
        }
    }

    /// Calls `f` with each logged-in session of `user`.
    pub(crate) fn for_each_session(&self, user: UserKey, mut f: impl FnMut(&Arc<ClientHandle>)) {
        if let Some(entry) = self.users.get(&user) {
            entry.sessions.iter().for_each(&mut f);
        }
    }

    /// Kicks every session of `user`; returns how many.
    pub(crate) fn kick(&self, user: UserKey) -> usize {
        let mut kicked = 0;
        self.for_each_session(user, |handle| {
            handle.outbox.kick();
            kicked += 1;
        });
        kicked
    }

    /// Whether a login closes the user's other sessions.
    pub(crate) fn single_login(&self) -> bool {
        self.policy == MultiLogin::Single
    }

    /// Logged-in sessions.
    pub(crate) fn sessions(&self) -> usize {
        self.online.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::outbox;

    fn handle(session: u64, uid: i64) -> Arc<ClientHandle> {
        let (outbox, _) = outbox(10, usize::MAX);
        Arc::new(ClientHandle {
            session,
            user: UserKey { pid: 1, uid },
            outbox,
            encoding: Encoding::MsgPack,
            endpoint: String::new(),
            login_seq: u64::MAX.into(),
        })
    }

    #[test]
    fn single_login_kicks_the_older_sessions() {
        let presence = Presence::new(MultiLogin::Single, 0);
        assert!(presence.login(handle(1, 7)).is_empty());
        let kicked = presence.login(handle(2, 7));
        assert_eq!(kicked.iter().map(|h| h.session).collect::<Vec<_>>(), vec![1]);
        assert_eq!(presence.logout(UserKey { pid: 1, uid: 7 }, 1), None, "the kicked session ends later");
        assert_eq!(presence.sessions(), 1, "counted once");
        let all = Presence::new(MultiLogin::All, 0);
        all.login(handle(1, 7));
        assert!(all.login(handle(2, 7)).is_empty());
        assert_eq!(all.sessions(), 2);
    }

    #[test]
    fn rooms_are_left_only_if_the_user_stays_away() {
        let presence = Presence::new(MultiLogin::All, 0);
        let user = UserKey { pid: 1, uid: 7 };
        presence.login(handle(1, 7));
        presence.note_room(user, 10, true);
        let generation = presence.logout(user, 1).expect("the last session");
        presence.login(handle(2, 7));
        assert!(presence.leave_if_still_offline(user, generation).is_empty(), "came back in time");
        let generation = presence.logout(user, 2).unwrap();
        assert_eq!(presence.leave_if_still_offline(user, generation), vec![10]);
        assert_eq!(presence.sessions(), 0);
    }
}
