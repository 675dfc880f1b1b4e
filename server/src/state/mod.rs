//! The embedded engine's store: sharded in-memory rooms, their members and
//! info, scheduled rooms and their deadline index, and bans.
//!
//! The state holds data and answers queries; it makes no decision. Room
//! rules (windows, thresholds, extensions) live in `engine`, which decides
//! on [`Mutation`]s, and `commit` applies them here with [`State::apply`].
//!
//! Rooms live in a [`DashMap`] keyed by `(pid, rid)`, so projects are
//! isolated and connections touching different shards never wait for each
//! other. No guard into the maps is ever held across an `.await` (clippy's
//! `await_holding_invalid_type` enforces it; see `clippy.toml`).
//!
//! A room exists while it has members or info (or is scheduled). Bans are
//! kept apart from rooms, so a ban outlives the emptying of its room.

mod bans;
mod lifetimes;
mod members;
mod user_rooms;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

pub(crate) use bans::Bans;
pub(crate) use lifetimes::Lifetimes;

use crate::model::{
    BanKey, BanScope, Delta, MemberChange, MemberChangeKind, MemberRole, Mode, Mutation, Participant,
    ParticipantRecord, Participants, Role, RoomKey, Schedule, UserKey,
};
use members::MemberSet;

#[derive(Debug, Default)]
struct Room {
    members: MemberSet,
    /// Boxed: most rooms have no info and no roles, and then they cost one
    /// pointer.
    extras: Option<Box<RoomExtras>>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct RoomExtras {
    oinfo: Box<str>,
    pinfo: Box<str>,
    /// Roles, modes and join times; `Some` once the room records them.
    /// Keys are always members.
    participants: Option<Participants>,
}

impl RoomExtras {
    fn is_empty(&self) -> bool {
        self.oinfo.is_empty() && self.pinfo.is_empty() && self.participants.as_ref().is_none_or(|p| p.is_empty())
    }
}

impl Room {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.extras.is_none()
    }

    fn extras_mut(&mut self) -> &mut RoomExtras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// Drops the extras once they hold nothing.
    fn tidy(&mut self) {
        if self.extras.as_ref().is_some_and(|e| e.is_empty()) {
            self.extras = None;
        }
    }

    fn participants(&self) -> Option<&Participants> {
        self.extras.as_ref().and_then(|e| e.participants.as_ref())
    }
}

/// A scheduled room's entry: its schedule and, beside it (not in a map of
/// its own, to save a second hash-table entry per room), the time of its last
/// operation, atomic so that recording one takes only a shard's read lock.
#[derive(Debug)]
struct ScheduledRoom {
    schedule: Schedule,
    last_activity_ms: AtomicI64,
}

/// A cheap-to-clone handle to the whole state.
#[derive(Clone, Default)]
pub(crate) struct State {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    rooms: DashMap<RoomKey, Room>,
    /// Window, policies and last activity of rooms made with `createroom`.
    schedules: DashMap<RoomKey, ScheduledRoom>,
    /// Scheduled rooms in order, for `listrooms`.
    scheduled_index: RwLock<BTreeSet<RoomKey>>,
    bans: Arc<Bans>,
    memberships: AtomicI64,
    /// Deadlines of scheduled rooms.
    lifetimes: Lifetimes,
    /// Rooms by user.
    user_rooms: user_rooms::UserRooms,
    /// When each user's login tokens were last revoked (`removetoken`).
    tokens_revoked: DashMap<UserKey, i64>,
}

/// A handle that does not keep the state alive (for the log's snapshotter).
#[derive(Clone, Default)]
pub(crate) struct WeakState(Weak<Inner>);

impl WeakState {
    pub(crate) fn upgrade(&self) -> Option<State> {
        self.0.upgrade().map(|inner| State { inner })
    }
}

impl crate::storage::Persisted for WeakState {
    fn restore(&self, mutation: &Mutation) {
        if let Some(state) = self.upgrade() {
            state.apply(mutation, false);
        }
    }

    fn export(&self) -> Option<Vec<Mutation>> {
        self.upgrade().map(|state| state.export())
    }
}

impl State {
    /// Applies a mutation to memory. With `observe`, reports what really
    /// changed (for events); without, reports [`Delta::Unobserved`] at no
    /// cost. Only `commit` (and recovery, which replays the log) calls it.
    pub(crate) fn apply(&self, mutation: &Mutation, observe: bool) -> Delta {
        let delta = match mutation {
            Mutation::AddMembers { pid, rid, uids, at_ms } => {
                self.add_members(RoomKey { pid: *pid, rid: *rid }, uids, *at_ms, observe)
            }
            Mutation::RemoveMembers { pid, rid, uids } => {
                self.remove_members(RoomKey { pid: *pid, rid: *rid }, uids, observe)
            }
            Mutation::SetRoomInfo { pid, rid, oinfo, pinfo } => {
                self.set_info(RoomKey { pid: *pid, rid: *rid }, oinfo.as_deref(), pinfo.as_deref(), observe)
            }
            Mutation::AddBan { pid, scope, uid, expires_at_ms } => {
                let key = BanKey { pid: *pid, scope: *scope, uid: *uid };
                let before = if observe { self.inner.bans.expiry(&key) } else { None };
                self.inner.bans.add(key, *expires_at_ms);
                Delta::Ban { before, after: Some(expires_at_ms.unwrap_or(i64::MAX)) }
            }
            Mutation::RemoveBan { pid, scope, uid } => {
                let key = BanKey { pid: *pid, scope: *scope, uid: *uid };
                let before = if observe { self.inner.bans.expiry(&key) } else { None };
                self.inner.bans.remove(&key, crate::clock::now_ms());
                Delta::Ban { before, after: None }
            }
            Mutation::CreateRoom { pid, rid, schedule, oinfo, pinfo } => {
                let key = RoomKey { pid: *pid, rid: *rid };
                // The index changes under the schedule's shard lock, so a
                // racing release cannot leave a stale index entry.
                let now = crate::clock::now_ms();
                let entry = self.inner.schedules.entry(key);
                self.inner.scheduled_index.write().unwrap_or_else(|e| e.into_inner()).insert(key);
                entry.insert(ScheduledRoom { schedule: *schedule, last_activity_ms: AtomicI64::new(now) });
                self.inner.lifetimes.track(key, schedule, now);
                if oinfo.is_some() || pinfo.is_some() {
                    self.set_info(key, oinfo.as_deref(), pinfo.as_deref(), false);
                }
                Delta::RoomCreated
            }
            Mutation::RoomBegan { pid, rid, at_ms } => {
                self.change_schedule(RoomKey { pid: *pid, rid: *rid }, |s| {
                    let first = s.begin_ms == 0;
                    if first {
                        s.begin_ms = *at_ms;
                    }
                    first
                });
                Delta::Nothing
            }
            Mutation::ExtendRoom { pid, rid, valid_until_ms, auto_extend } => {
                self.change_schedule(RoomKey { pid: *pid, rid: *rid }, |s| {
                    s.valid_until_ms = *valid_until_ms;
                    s.auto_extend = *auto_extend;
                    true
                })
            }
            Mutation::ReleaseRoom { pid, rid, .. } => {
                let key = RoomKey { pid: *pid, rid: *rid };
                let scheduled = self.inner.schedules.remove_if(&key, |key, _| {
                    self.inner.scheduled_index.write().unwrap_or_else(|e| e.into_inner()).remove(key);
                    true
                });
                let room = self.inner.rooms.remove(&key);
                if let Some((_, room)) = &room {
                    self.inner.memberships.fetch_sub(room.members.len() as i64, Ordering::Relaxed);
                    for uid in room.members.iter() {
                        self.inner.user_rooms.remove(UserKey { pid: key.pid, uid }, key.rid);
                    }
                }
                match (scheduled, room) {
                    (None, None) => Delta::Nothing,
                    (scheduled, room) => Delta::Released {
                        schedule: scheduled.map(|(_, slot)| slot.schedule),
                        members: match (observe, room) {
                            (true, Some((_, room))) => room.members.iter().collect(),
                            _ => Vec::new(),
                        },
                    },
                }
            }
            Mutation::UpsertMembers { pid, rid, members, at_ms } => {
                self.upsert_members(RoomKey { pid: *pid, rid: *rid }, members, *at_ms, observe)
            }
            Mutation::SetMemberMode { pid, rid, uid, mode } => {
                self.set_member_mode(RoomKey { pid: *pid, rid: *rid }, *uid, *mode)
            }
            Mutation::UpdateRoom {
                pid,
                rid,
                valid_from_ms,
                valid_until_ms,
                max_seconds,
                release_threshold,
                idle_seconds,
            } => self.change_schedule(RoomKey { pid: *pid, rid: *rid }, |s| {
                s.valid_from_ms = *valid_from_ms;
                s.valid_until_ms = *valid_until_ms;
                s.max_seconds = *max_seconds;
                s.release_threshold = *release_threshold;
                s.idle_seconds = *idle_seconds;
                true
            }),
            Mutation::RevokeTokens { pid, uid, at_ms } => {
                let mut revoked = self.inner.tokens_revoked.entry(UserKey { pid: *pid, uid: *uid }).or_insert(*at_ms);
                *revoked = (*revoked).max(*at_ms);
                Delta::Nothing
            }
            Mutation::RestoreParticipants { pid, rid, participants } => {
                if let Some(mut room) = self.inner.rooms.get_mut(&RoomKey { pid: *pid, rid: *rid }) {
                    let records: Vec<_> = participants
                        .iter()
                        .filter(|r| room.members.contains(r.uid))
                        .map(|r| (r.uid, r.participant))
                        .collect();
                    room.extras_mut().participants.get_or_insert_default().extend(records);
                }
                Delta::Nothing
            }
        };
        if observe {
            delta
        } else {
            Delta::Unobserved
        }
    }

    /// Changes a scheduled room's schedule (if `change` says it did) and
    /// queues its next deadline.
    fn change_schedule(&self, key: RoomKey, change: impl FnOnce(&mut Schedule) -> bool) -> Delta {
        let changed = self.inner.schedules.get_mut(&key).and_then(|mut slot| {
            let before = slot.schedule;
            change(&mut slot.schedule).then(|| (before, slot.schedule, slot.last_activity_ms.load(Ordering::Relaxed)))
        });
        match changed {
            Some((before, after, last_activity)) => {
                self.inner.lifetimes.track(key, &after, last_activity);
                if before == after {
                    Delta::Nothing
                } else {
                    Delta::Schedule { before, after }
                }
            }
            None => Delta::Nothing,
        }
    }

    /// A scheduled room's schedule and last operation.
    pub(crate) fn schedule_and_activity(&self, key: RoomKey) -> Option<(Schedule, i64)> {
        self.inner.schedules.get(&key).map(|slot| (slot.schedule, slot.last_activity_ms.load(Ordering::Relaxed)))
    }

    fn upsert_members(&self, key: RoomKey, members: &[MemberRole], at_ms: i64, observe: bool) -> Delta {
        let mut room = self.inner.rooms.entry(key).or_default();
        let mut changes = Vec::new();
        let mut added = Vec::new();
        for spec in members {
            let new = room.members.insert(spec.uid);
            if new {
                added.push(spec.uid);
            }
            let participants = room.extras_mut().participants.get_or_insert_default();
            let before = participants.get(&spec.uid).copied();
            let after = match before {
                _ if new => Participant::joined(spec.role, at_ms),
                Some(p) if p.role == spec.role => continue,
                Some(p) => Participant { role: spec.role, mode: spec.role.default_mode(), ..p },
                // Joined before the room recorded anything: an attendee since an unknown time.
                None => Participant::joined(spec.role, 0),
            };
            participants.insert(spec.uid, after);
            if observe {
                let kind = if new { MemberChangeKind::Joined } else { MemberChangeKind::Updated };
                changes.push(MemberChange { uid: spec.uid, kind, participant: after });
            }
        }
        drop(room);
        self.inner.memberships.fetch_add(added.len() as i64, Ordering::Relaxed);
        for uid in added {
            self.inner.user_rooms.add(UserKey { pid: key.pid, uid }, key.rid);
        }
        Delta::Members(changes)
    }

    fn set_member_mode(&self, key: RoomKey, uid: i64, mode: Mode) -> Delta {
        let Some(mut room) = self.inner.rooms.get_mut(&key) else { return Delta::Nothing };
        if !room.members.contains(uid) {
            return Delta::Nothing;
        }
        let participants = room.extras_mut().participants.get_or_insert_default();
        let entry = participants.entry(uid).or_default();
        if std::mem::replace(&mut entry.mode, mode) == mode {
            return Delta::Nothing;
        }
        let participant = *entry;
        Delta::Members(vec![MemberChange { uid, kind: MemberChangeKind::Updated, participant }])
    }

    /// A member's role, mode and join time; `None` if not a member.
    pub(crate) fn participant(&self, key: RoomKey, uid: i64) -> Option<Participant> {
        let room = self.inner.rooms.get(&key)?;
        if !room.members.contains(uid) {
            return None;
        }
        Some(room.participants().and_then(|p| p.get(&uid)).copied().unwrap_or_default())
    }

    /// Calls `f` with each member of the room and what is recorded about
    /// it, holding the room's shard for reading (keep `f` short).
    pub(crate) fn for_each_participant(&self, key: RoomKey, mut f: impl FnMut(i64, Participant)) {
        let Some(room) = self.inner.rooms.get(&key) else { return };
        let recorded = room.participants();
        for uid in room.members.iter() {
            f(uid, recorded.and_then(|p| p.get(&uid)).copied().unwrap_or_default());
        }
    }

    /// Whether any ban is held at all (a delivery then checks each member).
    pub(crate) fn any_bans(&self) -> bool {
        self.inner.bans.len() > 0
    }

    /// Members after `after` (exclusive) in ascending uid order, at most
    /// `limit`; and whether more follow.
    pub(crate) fn participants_page(
        &self,
        key: RoomKey,
        after: Option<i64>,
        limit: usize,
    ) -> (Vec<ParticipantRecord>, bool) {
        let Some(room) = self.inner.rooms.get(&key) else { return (Vec::new(), false) };
        let recorded = room.participants();
        let mut page: Vec<ParticipantRecord> = room
            .members
            .iter()
            .filter(|&uid| after.is_none_or(|a| uid > a))
            .take(limit + 1)
            .map(|uid| ParticipantRecord {
                uid,
                participant: recorded.and_then(|p| p.get(&uid)).copied().unwrap_or_default(),
            })
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        (page, more)
    }

    /// Scheduled rooms of `pid` after `after` (exclusive) in ascending rid
    /// order, at most `limit`; and whether more follow.
    pub(crate) fn scheduled_rooms_page(&self, pid: i64, after: Option<i64>, limit: usize) -> (Vec<i64>, bool) {
        let index = self.inner.scheduled_index.read().unwrap_or_else(|e| e.into_inner());
        let start = match after {
            Some(rid) if rid == i64::MAX => return (Vec::new(), false),
            Some(rid) => RoomKey { pid, rid: rid + 1 },
            None => RoomKey { pid, rid: i64::MIN },
        };
        let mut rids: Vec<i64> =
            index.range(start..=RoomKey { pid, rid: i64::MAX }).take(limit + 1).map(|k| k.rid).collect();
        let more = rids.len() > limit;
        rids.truncate(limit);
        (rids, more)
    }

    /// The schedule of a room made with `createroom`.
    pub(crate) fn schedule(&self, key: RoomKey) -> Option<Schedule> {
        self.inner.schedules.get(&key).map(|slot| slot.schedule)
    }

    /// Whether a room exists: scheduled, or holding members or info.
    pub(crate) fn room_exists(&self, key: RoomKey) -> bool {
        self.inner.schedules.contains_key(&key) || self.inner.rooms.contains_key(&key)
    }

    /// Records an operation on a room (resets a scheduled room's idle clock).
    pub(crate) fn touch(&self, key: RoomKey, now_ms: i64) {
        if let Some(slot) = self.inner.schedules.get(&key) {
            slot.last_activity_ms.fetch_max(now_ms, Ordering::Relaxed);
        }
    }

    /// The deadline index of scheduled rooms.
    pub(crate) fn lifetimes(&self) -> &Lifetimes {
        &self.inner.lifetimes
    }

    /// The bans, for their purge task.
    pub(crate) fn bans(&self) -> &Arc<Bans> {
        &self.inner.bans
    }

    pub(crate) fn downgrade(&self) -> WeakState {
        WeakState(Arc::downgrade(&self.inner))
    }

    /// The whole state as mutations that rebuild it (for snapshots).
    /// Expired bans are left out.
    pub(crate) fn export(&self) -> Vec<Mutation> {
        let mut out = Vec::new();
        for entry in &self.inner.schedules {
            let (key, schedule) = (entry.key(), entry.value().schedule);
            out.push(Mutation::CreateRoom {
                pid: key.pid,
                rid: key.rid,
                schedule: Schedule { begin_ms: 0, ..schedule },
                oinfo: None,
                pinfo: None,
            });
            if schedule.begin_ms != 0 {
                out.push(Mutation::RoomBegan { pid: key.pid, rid: key.rid, at_ms: schedule.begin_ms });
            }
        }
        for entry in &self.inner.rooms {
            let (key, room) = (entry.key(), entry.value());
            if !room.members.is_empty() {
                let uids = room.members.iter().collect();
                out.push(Mutation::AddMembers { pid: key.pid, rid: key.rid, uids, at_ms: 0 });
            }
            if let Some(extras) = &room.extras {
                out.push(Mutation::SetRoomInfo {
                    pid: key.pid,
                    rid: key.rid,
                    oinfo: Some(extras.oinfo.to_string()),
                    pinfo: Some(extras.pinfo.to_string()),
                });
                if let Some(participants) = &extras.participants {
                    let participants = participants
                        .iter()
                        .map(|(&uid, &participant)| ParticipantRecord { uid, participant })
                        .collect();
                    out.push(Mutation::RestoreParticipants { pid: key.pid, rid: key.rid, participants });
                }
            }
        }
        for entry in &self.inner.tokens_revoked {
            let (user, at_ms) = (entry.key(), *entry.value());
            out.push(Mutation::RevokeTokens { pid: user.pid, uid: user.uid, at_ms });
        }
        let now = crate::clock::now_ms();
        for (key, expiry) in self.inner.bans.export() {
            if expiry > now {
                let expires_at_ms = (expiry != i64::MAX).then_some(expiry);
                out.push(Mutation::AddBan { pid: key.pid, scope: key.scope, uid: key.uid, expires_at_ms });
            }
        }
        out
    }

    fn add_members(&self, key: RoomKey, uids: &[i64], at_ms: i64, observe: bool) -> Delta {
        let scheduled = self.inner.schedules.contains_key(&key);
        let mut room = self.inner.rooms.entry(key).or_default();
        // Who is new, then one merge of the batch into the member array
        // (one uid, the common case, allocates nothing).
        let (single, batch);
        let joined: &[i64] = match uids {
            [uid] if room.members.contains(*uid) => &[],
            [uid] => {
                single = [*uid];
                &single
            }
            _ => {
                let mut new: Vec<i64> = uids.iter().copied().filter(|&uid| !room.members.contains(uid)).collect();
                new.sort_unstable();
                new.dedup();
                batch = new;
                &batch
            }
        };
        room.members.insert_all(joined);
        if scheduled || room.participants().is_some() {
            // Record join times.
            let participant = Participant::joined(Role::Attendee, at_ms);
            room.extras_mut().participants.get_or_insert_default().extend(joined.iter().map(|&uid| (uid, participant)));
        }
        drop(room);
        self.inner.memberships.fetch_add(joined.len() as i64, Ordering::Relaxed);
        for &uid in joined {
            self.inner.user_rooms.add(UserKey { pid: key.pid, uid }, key.rid);
        }
        if !observe {
            return Delta::Unobserved;
        }
        let participant = Participant::joined(Role::Attendee, at_ms);
        Delta::Members(
            joined.iter().map(|&uid| MemberChange { uid, kind: MemberChangeKind::Joined, participant }).collect(),
        )
    }

    fn remove_members(&self, key: RoomKey, uids: &[i64], observe: bool) -> Delta {
        let Entry::Occupied(mut room) = self.inner.rooms.entry(key) else {
            return Delta::Nothing;
        };
        let mut left = Vec::new();
        for &uid in uids {
            if room.get_mut().members.remove(uid) {
                left.push(uid);
            }
        }
        let removed = left.len();
        let participants = room.get_mut().extras.as_mut().and_then(|e| e.participants.as_mut());
        let mut before = Vec::with_capacity(if observe { removed } else { 0 });
        if let Some(participants) = participants {
            for uid in uids {
                if let Some(p) = participants.remove(uid).filter(|_| observe) {
                    before.push((*uid, p));
                }
            }
        }
        room.get_mut().tidy();
        if room.get().is_empty() {
            room.remove();
        }
        self.inner.memberships.fetch_sub(removed as i64, Ordering::Relaxed);
        for &uid in &left {
            self.inner.user_rooms.remove(UserKey { pid: key.pid, uid }, key.rid);
        }
        if !observe {
            return Delta::Unobserved;
        }
        left.sort_unstable();
        let participant = |uid| before.iter().find(|(u, _)| *u == uid).map(|(_, p)| *p).unwrap_or_default();
        Delta::Members(
            left.into_iter()
                .map(|uid| MemberChange { uid, kind: MemberChangeKind::Left, participant: participant(uid) })
                .collect(),
        )
    }

    fn set_info(&self, key: RoomKey, oinfo: Option<&str>, pinfo: Option<&str>, observe: bool) -> Delta {
        let mut room = self.inner.rooms.entry(key).or_default();
        let extras = room.extras_mut();
        let mut changed = (None, None);
        if let Some(o) = oinfo {
            if observe && *extras.oinfo != *o {
                changed.0 = Some(o.to_owned());
            }
            extras.oinfo = o.into();
        }
        if let Some(p) = pinfo {
            if observe && *extras.pinfo != *p {
                changed.1 = Some(p.to_owned());
            }
            extras.pinfo = p.into();
        }
        room.tidy();
        if room.is_empty() {
            drop(room);
            self.inner.rooms.remove_if(&key, |_, r| r.is_empty());
        }
        match changed {
            (None, None) => Delta::Nothing,
            (oinfo, pinfo) => Delta::Info { oinfo, pinfo },
        }
    }

    /// `(oinfo, pinfo)`, empty when unset.
    pub(crate) fn room_info(&self, key: RoomKey) -> (String, String) {
        match self.inner.rooms.get(&key).as_deref().and_then(|room| room.extras.as_deref()) {
            Some(extras) => (extras.oinfo.to_string(), extras.pinfo.to_string()),
            None => (String::new(), String::new()),
        }
    }

    /// Members in ascending order.
    pub(crate) fn members(&self, key: RoomKey) -> Vec<i64> {
        self.inner.rooms.get(&key).map(|room| room.members.iter().collect()).unwrap_or_default()
    }

    /// Whether `uid` is a member of the room.
    pub(crate) fn is_member(&self, key: RoomKey, uid: i64) -> bool {
        self.inner.rooms.get(&key).is_some_and(|room| room.members.contains(uid))
    }

    /// Number of members.
    pub(crate) fn member_count(&self, key: RoomKey) -> usize {
        self.inner.rooms.get(&key).map_or(0, |room| room.members.len())
    }

    /// Whether `uid` is banned in room `rid`, by a room ban or an all-rooms ban.
    pub(crate) fn is_banned_in_room(&self, pid: i64, rid: i64, uid: i64, now_ms: i64) -> bool {
        let bans = &self.inner.bans;
        (rid > 0 && bans.is_active(&BanKey { pid, scope: BanScope::Room(rid), uid }, now_ms))
            || bans.is_active(&BanKey { pid, scope: BanScope::AllRooms, uid }, now_ms)
    }

    /// Whether `uid` is on the project block list.
    pub(crate) fn is_project_black(&self, pid: i64, uid: i64, now_ms: i64) -> bool {
        self.inner.bans.is_active(&BanKey { pid, scope: BanScope::ProjectBlack, uid }, now_ms)
    }

    /// The rooms `user` is a member of, ascending.
    pub(crate) fn user_rooms(&self, user: UserKey) -> Vec<i64> {
        self.inner.user_rooms.rooms(user)
    }

    /// How many rooms `user` is a member of.
    pub(crate) fn user_room_count(&self, user: UserKey) -> usize {
        self.inner.user_rooms.count(user)
    }

    /// When `user`'s login tokens were last revoked, if ever.
    pub(crate) fn tokens_revoked_at(&self, user: UserKey) -> Option<i64> {
        self.inner.tokens_revoked.get(&user).map(|at| *at)
    }

    /// Sizes for monitoring: `(rooms, memberships, bans held)`.
    pub(crate) fn stats(&self) -> (usize, i64, usize) {
        (self.inner.rooms.len(), self.inner.memberships.load(Ordering::Relaxed), self.inner.bans.len())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_rebuilds_the_same_state() {
        let state = State::default();
        state.apply(&Mutation::AddMembers { pid: 1, rid: 7, uids: vec![3, 1], at_ms: 0 }, false);
        state.apply(&Mutation::SetRoomInfo { pid: 1, rid: 8, oinfo: Some("o".into()), pinfo: None }, false);
        state.apply(&Mutation::AddBan { pid: 1, scope: BanScope::AllRooms, uid: 5, expires_at_ms: None }, false);
        state.apply(&Mutation::AddBan { pid: 1, scope: BanScope::Room(7), uid: 6, expires_at_ms: Some(1) }, false);
        let specs = vec![MemberRole { uid: 9, role: Role::Presenter }];
        state.apply(&Mutation::UpsertMembers { pid: 1, rid: 8, members: specs, at_ms: 1234 }, false);
        state.apply(&Mutation::SetMemberMode { pid: 1, rid: 8, uid: 9, mode: Mode::Neither }, false);
        let copy = State::default();
        for m in state.export() {
            copy.apply(&m, false);
        }
        let roles = RoomKey { pid: 1, rid: 8 };
        assert_eq!(copy.participants_page(roles, None, 10), state.participants_page(roles, None, 10));
        assert_eq!(copy.participant(roles, 9).unwrap().joined_at_ms, 1234);
        assert_eq!(copy.members(KEY), vec![1, 3]);
        assert_eq!(copy.room_info(RoomKey { pid: 1, rid: 8 }), ("o".into(), String::new()));
        assert!(copy.is_banned_in_room(1, 9, 5, crate::clock::now_ms()));
        assert_eq!(copy.stats(), (2, 3, 1), "the expired ban is not exported");
    }

    use super::*;

    const KEY: RoomKey = RoomKey { pid: 1, rid: 7 };

    fn uids_of(delta: &Delta) -> Vec<i64> {
        match delta {
            Delta::Members(changes) => changes.iter().map(|c| c.uid).collect(),
            other => panic!("not a member change: {other:?}"),
        }
    }

    #[test]
    fn deltas_report_only_real_changes_and_cost_nothing_unobserved() {
        let state = State::default();
        let info = |o: &str| Mutation::SetRoomInfo { pid: 1, rid: 7, oinfo: Some(o.into()), pinfo: None };
        assert_eq!(state.apply(&info("a"), true), Delta::Info { oinfo: Some("a".into()), pinfo: None });
        assert_eq!(state.apply(&info("a"), true), Delta::Nothing, "the same value again");
        assert_eq!(state.apply(&info("b"), false), Delta::Unobserved);
        let add = Mutation::AddMembers { pid: 1, rid: 7, uids: vec![5], at_ms: 0 };
        assert_eq!(uids_of(&state.apply(&add, true)), vec![5]);
        assert_eq!(uids_of(&state.apply(&add, true)), Vec::<i64>::new(), "already a member");
        let release = Mutation::ReleaseRoom { pid: 1, rid: 7, reason: crate::model::ReleaseReason::Deleted };
        assert_eq!(state.apply(&release, true), Delta::Released { schedule: None, members: vec![5] });
        assert_eq!(state.apply(&release, true), Delta::Nothing, "already gone");
    }

    #[test]
    fn rooms_appear_with_their_first_member_and_vanish_when_empty() {
        let state = State::default();
        let joined = state.apply(&Mutation::AddMembers { pid: 1, rid: 7, uids: vec![3, 1, 3], at_ms: 0 }, true);
        assert_eq!(uids_of(&joined), vec![1, 3], "each new member once, in order");
        assert_eq!(state.members(KEY), vec![1, 3]);
        assert_eq!(state.stats(), (1, 2, 0));
        let left = state.apply(&Mutation::RemoveMembers { pid: 1, rid: 7, uids: vec![1, 3, 9] }, true);
        assert_eq!(uids_of(&left), vec![1, 3], "only members leave");
        assert_eq!(state.stats(), (0, 0, 0));
    }

    #[test]
    fn projects_are_isolated() {
        let state = State::default();
        state.apply(&Mutation::AddMembers { pid: 1, rid: 7, uids: vec![1], at_ms: 0 }, false);
        assert_eq!(state.member_count(RoomKey { pid: 2, rid: 7 }), 0);
        assert_eq!(state.member_count(KEY), 1);
    }

    #[test]
    fn info_keeps_an_empty_room_alive_until_cleared() {
        let state = State::default();
        state.apply(&Mutation::SetRoomInfo { pid: 1, rid: 7, oinfo: Some("o".into()), pinfo: None }, false);
        state.apply(&Mutation::SetRoomInfo { pid: 1, rid: 7, oinfo: None, pinfo: Some("p".into()) }, false);
        assert_eq!(state.room_info(KEY), ("o".into(), "p".into()));
        assert_eq!(state.stats().0, 1);
        state.apply(
            &Mutation::SetRoomInfo { pid: 1, rid: 7, oinfo: Some(String::new()), pinfo: Some(String::new()) },
            false,
        );
        assert_eq!(state.stats().0, 0);
        assert_eq!(state.room_info(KEY), (String::new(), String::new()));
    }

    #[test]
    fn all_rooms_bans_cover_every_room() {
        let state = State::default();
        state.apply(&Mutation::AddBan { pid: 1, scope: BanScope::AllRooms, uid: 5, expires_at_ms: None }, false);
        assert!(state.is_banned_in_room(1, 7, 5, 0));
        assert!(state.is_banned_in_room(1, 8, 5, 0));
        assert!(!state.is_banned_in_room(2, 7, 5, 0));
        state.apply(&Mutation::AddBan { pid: 1, scope: BanScope::Room(7), uid: 6, expires_at_ms: Some(100) }, false);
        assert!(state.is_banned_in_room(1, 7, 6, 99));
        assert!(!state.is_banned_in_room(1, 7, 6, 100));
        assert!(!state.is_banned_in_room(1, 8, 6, 0));
    }
}
