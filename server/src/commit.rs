//! The commit step: every change the engine decides on passes through here
//! on its way to memory, the write-ahead log and the room events.
//!
//! [`Commit::apply`] applies a [`Mutation`] to the state and, when
//! durability is on, appends it to the log under the log's lock, so log
//! order is apply order. When a listener of the room's project may match,
//! it takes the room's ordering lock, has the state report what it really
//! changed (a [`Delta`]) and queues the events that describe it, so one
//! room's events are queued in the order they happened. With no
//! listener this costs one atomic load.
//!
//! The engine calls it inside an operation's critical section; neither the
//! state nor the log know about each other or about events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::events::{self, Hub};
use crate::history::History;
use crate::metrics::MessageStats;
use crate::model::{BanKey, Delta, MemberChangeKind, Mode, Mutation, RoomKey, UserKey};
use crate::outbox::{Delivery, Offered, Push};
use crate::presence::Presence;
use crate::state::State;
use crate::storage::Wal;

/// Applies, logs and announces changes.
pub(crate) struct Commit {
    state: State,
    events: Arc<Hub>,
    /// Logged-in client sessions: told with `kickoutroom` when they leave a
    /// room other than by their own `leaveroom`.
    presence: Arc<Presence>,
    /// The write-ahead log, when durability is on.
    log: OnceLock<Arc<Wal>>,
    /// Room message history, when on: a released room's may be dropped.
    history: OnceLock<Arc<History>>,
    /// Room messages delivered, and pushes queued for them.
    messages_sent: AtomicU64,
    message_pushes: AtomicU64,
}

impl Commit {
    pub(crate) fn new(state: State, events: Arc<Hub>, presence: Arc<Presence>) -> Self {
        Self {
            state,
            events,
            presence,
            log: OnceLock::new(),
            history: OnceLock::new(),
            messages_sent: AtomicU64::new(0),
            message_pushes: AtomicU64::new(0),
        }
    }

    /// Logged-in client sessions.
    pub(crate) fn presence(&self) -> &Arc<Presence> {
        &self.presence
    }

    /// The state changes are applied to.
    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    /// The room events hub.
    pub(crate) fn events(&self) -> &Arc<Hub> {
        &self.events
    }

    /// Makes every later change go through `log`.
    pub(crate) fn attach_log(&self, log: Arc<Wal>) {
        let _ = self.log.set(log);
    }

    /// The write-ahead log, if durability is on.
    pub(crate) fn log(&self) -> Option<&Arc<Wal>> {
        self.log.get()
    }

    /// Keeps room messages as history in `history` from now on.
    pub(crate) fn attach_history(&self, history: Arc<History>) {
        let _ = self.history.set(history);
    }

    /// The history store, if history is on.
    pub(crate) fn history(&self) -> Option<&Arc<History>> {
        self.history.get()
    }

    /// Applies a change asked for through the API. Returns what really
    /// changed when someone listens, [`Delta::Unobserved`] otherwise.
    pub(crate) fn apply(&self, mutation: Mutation) -> Delta {
        self.apply_as(mutation, false, None)
    }

    /// [`apply`](Self::apply) for a change `user` made about themself
    /// (entering or leaving a room as a client): they get no `kickoutroom`.
    pub(crate) fn apply_by(&self, mutation: Mutation, user: UserKey) -> Delta {
        self.apply_as(mutation, false, Some(user))
    }

    /// [`apply`](Self::apply) for a change the server decided by itself (at
    /// a deadline): its events are held at start-up until someone listens.
    pub(crate) fn apply_server_decided(&self, mutation: Mutation) -> Delta {
        self.apply_as(mutation, true, None)
    }

    fn apply_as(&self, mutation: Mutation, server_decided: bool, by: Option<UserKey>) -> Delta {
        let released = match (&mutation, self.history.get()) {
            (Mutation::ReleaseRoom { pid, rid, .. }, Some(history)) => {
                Some((RoomKey { pid: *pid, rid: *rid }, history))
            }
            _ => None,
        };
        let delta = self.apply_and_announce(mutation, server_decided, by);
        if let Some((room, history)) = released {
            if let Err(e) = history.room_released(room) {
                let (pid, rid) = (room.pid, room.rid);
                // The rows stay until they age out; nothing acknowledged is lost.
                tracing::error!(error = %e, pid, rid, "could not drop a released room's history");
            }
        }
        delta
    }

    fn apply_and_announce(&self, mutation: Mutation, server_decided: bool, by: Option<UserKey>) -> Delta {
        let (pid, rid) = mutation.room();
        let hub = &self.events;
        let removes = matches!(mutation, Mutation::RemoveMembers { .. } | Mutation::ReleaseRoom { .. });
        let tell_sessions = removes && self.presence.sessions() > 0;
        if !hub.wants(pid, rid, server_decided.then(crate::clock::now_ms)) {
            let delta = self.apply_logged(&mutation, tell_sessions);
            if tell_sessions {
                self.kickout_from_room(pid, rid, &delta, by);
            }
            return delta;
        }
        let _order = hub.order(pid, rid);
        // Read under the lock, so one room's event times never go back.
        let now = crate::clock::now_ms();
        let delta = self.apply_logged(&mutation, true);
        hub.publish(pid, events::describe(&mutation, &delta, now), now);
        if tell_sessions {
            self.kickout_from_room(pid, rid, &delta, by);
        }
        delta
    }

    /// Delivers a room message: to every session of every member but the
    /// sending session (`except`), members muted in the room, and members
    /// whose mode does not receive; and to the backends listening to the
    /// room. Called under the room's lock, so receivers see one order.
    pub(crate) fn deliver_room_message(&self, message: Arc<Delivery>, except: Option<u64>) {
        let key = RoomKey { pid: message.pid, rid: message.rid };
        self.messages_sent.fetch_add(1, Ordering::Relaxed);
        let mut pushes = 0u64;
        if self.presence.sessions() > 0 {
            let check_bans = self.state.any_bans();
            self.state.for_each_participant(key, |uid, participant| {
                if !matches!(participant.mode, Mode::SendReceive | Mode::ReceiveOnly) {
                    return;
                }
                if check_bans && self.state.is_banned_in_room(key.pid, key.rid, uid, message.mtime) {
                    return;
                }
                self.presence.for_each_session(UserKey { pid: key.pid, uid }, |session| {
                    if Some(session.session) != except {
                        let push =
                            Push::RoomMessage { message: message.clone(), encoding: session.encoding, to_client: true };
                        pushes += u64::from(session.offer(push) == Offered::Queued);
                    }
                });
            });
        }
        pushes += self.events.offer_room_message(&message);
        self.message_pushes.fetch_add(pushes, Ordering::Relaxed);
    }

    /// Sessions and messages so far, for metrics.
    pub(crate) fn message_stats(&self) -> MessageStats {
        MessageStats {
            sessions: self.presence.sessions(),
            sent: self.messages_sent.load(Ordering::Relaxed),
            pushed: self.message_pushes.load(Ordering::Relaxed),
            ..MessageStats::default()
        }
    }

    /// `kickoutroom` to the sessions of members who left room `rid`, but
    /// for `by`, who left by themself.
    fn kickout_from_room(&self, pid: i64, rid: i64, delta: &Delta, by: Option<UserKey>) {
        let left: Vec<i64> = match delta {
            Delta::Members(changes) => {
                changes.iter().filter(|c| c.kind == MemberChangeKind::Left).map(|c| c.uid).collect()
            }
            Delta::Released { members, .. } => members.clone(),
            _ => return,
        };
        for uid in left {
            let user = UserKey { pid, uid };
            if Some(user) == by {
                continue;
            }
            self.presence.for_each_session(user, |session| {
                session.offer(Push::KickoutRoom { rid, encoding: session.encoding });
            });
        }
    }

    fn apply_logged(&self, mutation: &Mutation, observe: bool) -> Delta {
        match self.log.get() {
            Some(log) => log.log(mutation, || self.state.apply(mutation, observe)),
            None => self.state.apply(mutation, observe),
        }
    }

    /// Announces `ban_expired` for bans the purge dropped from memory.
    /// (The purge changes nothing that is logged: expiry is absolute, and
    /// an expired ban is inactive whether or not it is still held.)
    pub(crate) fn bans_expired(&self, expired: &[(BanKey, i64)]) {
        let hub = &self.events;
        for &(key, expiry) in expired {
            let rid = key.scope.rid();
            if !hub.wants(key.pid, rid, Some(crate::clock::now_ms())) {
                continue;
            }
            let _order = hub.order(key.pid, rid);
            let now = crate::clock::now_ms();
            if self.state.bans().expiry(&key).is_some() {
                // Banned again since the purge: that ban's events came first
                // and it is the one that counts now.
                continue;
            }
            let event = events::ban_expired(key.pid, rid, key.uid, key.scope, expiry, now);
            hub.publish(key.pid, vec![event], now);
        }
    }
}

#[cfg(test)]
mod tests {
    use rtm_protocol::Encoding;

    use super::*;
    use crate::model::{BanScope, MemberRole, Mode, ReleaseReason, Role, Schedule};
    use crate::outbox::{outbox, Next, Outbox, OutboxSender, Push};

    fn listen(state: &Commit) -> (OutboxSender, Outbox) {
        let (tx, rx) = outbox(1000, usize::MAX);
        state.events().listen(1, &tx, 1, Encoding::Json, 0, |f| {
            f.all_events = true;
            true
        });
        (tx, rx)
    }

    fn commit() -> Commit {
        Commit::new(State::default(), Arc::default(), Arc::new(Presence::new(crate::config::MultiLogin::All, 0)))
    }

    fn drain(slot: &mut (OutboxSender, Outbox)) -> Vec<(&'static str, Option<i64>, String)> {
        std::iter::from_fn(|| slot.1.try_next())
            .filter_map(|push| match push {
                Next::Push(Push::Event { event, .. }) => Some((event.name.as_str(), event.uid, event.data.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn only_real_changes_make_events() {
        let state = commit();
        let mut slot = listen(&state);
        state.apply(Mutation::AddMembers { pid: 1, rid: 7, uids: vec![2, 1, 2], at_ms: 0 });
        state.apply(Mutation::AddMembers { pid: 1, rid: 7, uids: vec![1], at_ms: 0 });
        state.apply(Mutation::RemoveMembers { pid: 1, rid: 7, uids: vec![2, 9] });
        state.apply(Mutation::SetRoomInfo { pid: 1, rid: 7, oinfo: Some("o".into()), pinfo: None });
        state.apply(Mutation::SetRoomInfo { pid: 1, rid: 7, oinfo: Some("o".into()), pinfo: None });
        state.apply(Mutation::RemoveBan { pid: 1, scope: BanScope::Room(7), uid: 1 });
        let events = drain(&mut slot);
        let names: Vec<_> = events.iter().map(|(n, uid, _)| (*n, *uid)).collect();
        assert_eq!(
            names,
            vec![
                ("member_joined", Some(1)),
                ("member_joined", Some(2)),
                ("member_left", Some(2)),
                ("info_changed", None)
            ]
        );
        assert_eq!(events[0].2, r#"{"rid":7,"role":"attendee","mode":1}"#);
        assert_eq!(events[3].2, r#"{"oinfo":"o","rid":7}"#);
    }

    #[test]
    fn roles_modes_and_releases() {
        let state = commit();
        let mut slot = listen(&state);
        let upsert =
            |role| Mutation::UpsertMembers { pid: 1, rid: 7, members: vec![MemberRole { uid: 3, role }], at_ms: 5 };
        state.apply(upsert(Role::Consumer));
        state.apply(upsert(Role::Consumer));
        state.apply(upsert(Role::Presenter));
        state.apply(Mutation::SetMemberMode { pid: 1, rid: 7, uid: 3, mode: Mode::Neither });
        state.apply(Mutation::SetMemberMode { pid: 1, rid: 7, uid: 3, mode: Mode::Neither });
        state.apply(Mutation::ReleaseRoom { pid: 1, rid: 7, reason: ReleaseReason::Deleted });
        state.apply(Mutation::ReleaseRoom { pid: 1, rid: 7, reason: ReleaseReason::Deleted });
        let events = drain(&mut slot);
        let data: Vec<_> = events.iter().map(|(n, _, d)| format!("{n} {d}")).collect();
        assert_eq!(data[0], r#"member_joined {"rid":7,"role":"consumer","mode":3}"#);
        assert_eq!(data[1], r#"member_updated {"rid":7,"role":"presenter","mode":1}"#);
        assert_eq!(data[2], r#"member_updated {"rid":7,"role":"presenter","mode":4}"#);
        assert!(data[3].starts_with(r#"room_released {"begin_time":0,"end_time":"#), "{}", data[3]);
        assert!(data[3].ends_with(r#""reason":"deleted","rid":7}"#), "{}", data[3]);
        assert_eq!(data.len(), 4, "{data:?}");
    }

    #[test]
    fn bans_announce_each_change_once() {
        let state = commit();
        let mut slot = listen(&state);
        let ban = |expires_at_ms| Mutation::AddBan { pid: 1, scope: BanScope::Room(7), uid: 3, expires_at_ms };
        state.apply(ban(Some(i64::MAX - 1)));
        state.apply(ban(Some(i64::MAX - 1))); // a retry
        state.apply(Mutation::RemoveBan { pid: 1, scope: BanScope::Room(7), uid: 3 });
        state.apply(ban(Some(1))); // already over: expired, but not purged yet
        state.apply(Mutation::RemoveBan { pid: 1, scope: BanScope::Room(7), uid: 3 });
        let names: Vec<_> = drain(&mut slot).into_iter().map(|(name, _, _)| name).collect();
        assert_eq!(names, vec!["ban_added", "ban_removed", "ban_added", "ban_expired"]);
    }

    #[test]
    fn rooms_announce_their_info_and_real_updates_only() {
        let state = commit();
        let mut slot = listen(&state);
        let schedule = Schedule {
            valid_from_ms: 0,
            valid_until_ms: i64::MAX / 2,
            max_seconds: 0,
            release_threshold: 0,
            idle_seconds: 0,
            begin_ms: 0,
            auto_extend: false,
        };
        state.apply(Mutation::CreateRoom { pid: 1, rid: 7, schedule, oinfo: Some("o".into()), pinfo: None });
        let update = |idle_seconds| Mutation::UpdateRoom {
            pid: 1,
            rid: 7,
            valid_from_ms: 0,
            valid_until_ms: i64::MAX / 2,
            max_seconds: 0,
            release_threshold: 0,
            idle_seconds,
        };
        state.apply(update(0)); // same values
        state.apply(update(60));
        let events = drain(&mut slot);
        let names: Vec<_> = events.iter().map(|(name, _, _)| *name).collect();
        assert_eq!(names, vec!["room_created", "info_changed", "room_updated"]);
        assert_eq!(events[1].2, r#"{"oinfo":"o","rid":7}"#);
    }
}
