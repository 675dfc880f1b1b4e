//! The engine: the room server's domain operations, each atomic.
//!
//! Every operation that changes a room (admit, remove, upsert members, set
//! a mode, create, update, extend, delete, settle a deadline, …) checks its
//! rules and makes its change as one step: the embedded engine holds the
//! room's lock (one of [`ROOM_LOCKS`] stripes) from the first read to the
//! last write, so no two operations on one room interleave. The changes
//! themselves are [`Mutation`]s handed to the [`Commit`] step, which
//! applies, logs and announces them.
//!
//! Handlers (`cmd/`) parse a quest, call one engine operation and write the
//! answer; they hold no rules. This is the surface a second engine (Redis
//! Cluster, one server-side function call per operation) implements, and
//! where room messaging arrives as one more operation.
//!
//! Reads take no room lock: each reads one consistent map entry.

mod bans;
mod deadlines;
mod history;
mod members;
mod messages;
mod redis_engine;
mod rooms;
pub(crate) mod sweeper;
mod users;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rtm_protocol::ErrorCode;

pub(crate) use history::{AfterError, Reader};
pub(crate) use messages::Sender;
pub(crate) use redis_engine::Remote;
pub(crate) use rooms::{check_window_bounds, non_negative, NewRoom, PolicyChange};

use crate::commit::Commit;
use crate::config::MultiLogin;
use crate::error::RtmError;
use crate::events::Hub;
use crate::model::{Mutation, ParticipantRecord, RoomKey, Schedule};
use crate::presence::Presence;
use crate::state::State;
use crate::storage::Wal;

/// Stripes of room locks: enough that unrelated rooms rarely share one.
const ROOM_LOCKS: usize = 1024;

/// The embedded engine: the in-memory state, its commit step and the room
/// locks. A cheap-to-clone handle.
#[derive(Clone)]
pub(crate) struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    commit: Commit,
    locks: Box<[Mutex<()>]>,
    /// Room ids handed out by `createroom` without one.
    next_rid: AtomicI64,
    /// Recent sends, to answer retries (see `messages.rs`).
    sent: dashmap::DashMap<messages::SentKey, messages::Sent>,
    /// When this engine started (Unix ms): until the retry window has
    /// passed, `sent` does not hold every earlier send, and history is asked.
    started_ms: i64,
    /// Rooms whose recent sends were read back from history (see `messages.rs`).
    recalled: dashmap::DashSet<RoomKey>,
    /// The Redis Cluster, in `redis` mode: changes go there, and the state
    /// is this node's cache of it.
    remote: std::sync::OnceLock<Arc<Remote>>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(State::default(), Arc::default(), Arc::new(Presence::new(MultiLogin::All, 0)))
    }
}

impl Engine {
    pub(crate) fn new(state: State, events: Arc<Hub>, presence: Arc<Presence>) -> Self {
        let locks = (0..ROOM_LOCKS).map(|_| Mutex::new(())).collect();
        let commit = Commit::new(state, events, presence);
        let started_ms = crate::clock::now_ms();
        let inner = Inner {
            commit,
            locks,
            next_rid: AtomicI64::new(0),
            sent: Default::default(),
            started_ms,
            recalled: Default::default(),
            remote: Default::default(),
        };
        Self { inner: Arc::new(inner) }
    }

    // The change methods call the remote side as `Box::pin(remote.op(..))`:
    // its futures (a round trip's state) are large, and unboxed they would
    // size every quest's future on the embedded path too (1,328 bytes for
    // `Command::execute` before); boxed, only redis mode pays, one
    // allocation beside a network round trip.

    /// Switches to `redis` mode: changes go to the cluster from now on.
    pub(crate) fn attach_remote(&self, remote: Arc<Remote>) {
        self.state().lifetimes().turn_off();
        let _ = self.inner.remote.set(remote);
    }

    /// Whether the engine's store answers (always, for the embedded one).
    pub(crate) fn store_healthy(&self) -> bool {
        self.remote().is_none_or(|r| r.cluster.stats.healthy.load(Ordering::Relaxed))
    }

    /// The Redis Cluster side, in `redis` mode.
    pub(crate) fn remote(&self) -> Option<&Arc<Remote>> {
        self.inner.remote.get()
    }

    /// The logged-in client sessions (node-local).
    pub(crate) fn presence(&self) -> &Arc<Presence> {
        self.inner.commit.presence()
    }

    /// Held for the whole of an operation that changes room `key`.
    fn lock(&self, key: RoomKey) -> MutexGuard<'_, ()> {
        let hash = (key.rid as u64 ^ (key.pid as u64).rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let stripe = (hash >> 32) as usize % ROOM_LOCKS;
        self.inner.locks[stripe].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn commit(&self) -> &Commit {
        &self.inner.commit
    }

    fn state(&self) -> &State {
        self.inner.commit.state()
    }

    /// The room events hub.
    pub(crate) fn events(&self) -> &Arc<Hub> {
        self.inner.commit.events()
    }

    /// Makes every later change durable through `log`.
    pub(crate) fn attach_log(&self, log: Arc<Wal>) {
        self.inner.commit.attach_log(log);
    }

    /// The write-ahead log, if durability is on.
    pub(crate) fn log(&self) -> Option<&Arc<Wal>> {
        self.inner.commit.log()
    }

    /// Keeps room messages as history from now on.
    pub(crate) fn attach_history(&self, history: Arc<crate::history::History>) {
        self.inner.commit.attach_history(history);
    }

    /// The history store, if history is on.
    pub(crate) fn history(&self) -> Option<&Arc<crate::history::History>> {
        self.inner.commit.history()
    }

    /// What an answer acknowledging a write must wait for: the log and the
    /// history store, when they are durable.
    pub(crate) fn durability(&self) -> Vec<Arc<dyn crate::storage::Durability>> {
        let mut sources: Vec<Arc<dyn crate::storage::Durability>> = Vec::new();
        if let Some(log) = self.log() {
            sources.push(log.clone());
        }
        if let Some(history) = self.history() {
            sources.push(history.writer().clone());
        }
        sources
    }

    /// A handle storage may keep without keeping the state alive.
    pub(crate) fn persisted(&self) -> Arc<dyn crate::storage::Persisted> {
        Arc::new(self.state().downgrade())
    }

    /// Sessions and messages so far, for metrics.
    pub(crate) fn message_stats(&self) -> crate::metrics::MessageStats {
        let mut stats = self.inner.commit.message_stats();
        if let Some(history) = self.history() {
            let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
            stats.history_stored = load(&history.stats.stored);
            stats.history_deleted = load(&history.stats.deleted);
            stats.history_expired = load(&history.stats.expired);
            stats.history_disk_bytes = history.disk_bytes();
        }
        if let Some(remote) = self.remote() {
            stats.redis = remote.cluster.stats.snapshot();
            stats.redis.swept_partitions = remote.sweeper.owned.load(Ordering::Relaxed) as u64;
        }
        stats
    }

    /// Sizes for monitoring: `(rooms, memberships, bans held)`.
    pub(crate) fn stats(&self) -> (usize, i64, usize) {
        self.state().stats()
    }

    /// A room id that no room of any project has used, for `createroom`
    /// without one.
    fn fresh_rid(&self, now_ms: i64) -> i64 {
        // Start from the clock so ids stay unique across restarts.
        let next = &self.inner.next_rid;
        let _ = next.compare_exchange(0, now_ms * 1000, Ordering::Relaxed, Ordering::Relaxed);
        next.fetch_add(1, Ordering::Relaxed)
    }

    // Reads.

    /// Records an operation on a room (resets a scheduled room's idle clock).
    pub(crate) fn touch(&self, key: RoomKey, now_ms: i64) {
        if let Some(remote) = self.remote() {
            // The idle clock is Redis's (changes restart it there themselves).
            if self.state().schedule(key).is_some() {
                remote.touch(key, now_ms);
            }
            return;
        }
        self.state().touch(key, now_ms);
    }

    /// Whether a room exists: scheduled, or holding members or info.
    pub(crate) fn room_exists(&self, key: RoomKey) -> bool {
        self.state().room_exists(key)
    }

    /// The schedule of a room made with `createroom`.
    pub(crate) fn schedule(&self, key: RoomKey) -> Option<Schedule> {
        self.state().schedule(key)
    }

    /// Members in ascending order.
    pub(crate) fn members(&self, key: RoomKey) -> Vec<i64> {
        self.state().members(key)
    }

    /// Whether `uid` is a member of the room.
    pub(crate) fn is_member(&self, key: RoomKey, uid: i64) -> bool {
        self.state().is_member(key, uid)
    }

    /// Number of members.
    pub(crate) fn member_count(&self, key: RoomKey) -> usize {
        self.state().member_count(key)
    }

    /// `(oinfo, pinfo)`, empty when unset.
    pub(crate) fn room_info(&self, key: RoomKey) -> (String, String) {
        self.state().room_info(key)
    }

    /// Members after `after` in ascending uid order, at most `limit`; and
    /// whether more follow.
    pub(crate) fn participants_page(
        &self,
        key: RoomKey,
        after: Option<i64>,
        limit: usize,
    ) -> (Vec<ParticipantRecord>, bool) {
        self.state().participants_page(key, after, limit)
    }

    /// Scheduled rooms of `pid` after `after` in ascending rid order, at
    /// most `limit`; and whether more follow.
    pub(crate) fn scheduled_rooms_page(&self, pid: i64, after: Option<i64>, limit: usize) -> (Vec<i64>, bool) {
        self.state().scheduled_rooms_page(pid, after, limit)
    }

    /// Whether `uid` is banned in room `rid`, by a room ban or an all-rooms ban.
    pub(crate) fn is_banned_in_room(&self, pid: i64, rid: i64, uid: i64, now_ms: i64) -> bool {
        self.state().is_banned_in_room(pid, rid, uid, now_ms)
    }

    /// Whether `uid` is on the project block list.
    pub(crate) fn is_project_black(&self, pid: i64, uid: i64, now_ms: i64) -> bool {
        self.state().is_project_black(pid, uid, now_ms)
    }

    // Rules shared by the operations; called with the room's lock held.

    /// Refuses (200021) joins to a scheduled room outside its window;
    /// returns whether the room is scheduled.
    fn check_window(&self, key: RoomKey, now_ms: i64) -> Result<bool, RtmError> {
        let Some(schedule) = self.state().schedule(key) else { return Ok(false) };
        if !schedule.is_open(now_ms) {
            return Err(RtmError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "room {} admits members from {} to {} (Unix seconds)",
                    key.rid,
                    schedule.valid_from_ms / 1000,
                    schedule.valid_until_ms / 1000
                ),
            ));
        }
        Ok(true)
    }

    /// After a join to a scheduled room: records when it begins (its second
    /// member joined), and resets its idle clock.
    fn after_join(&self, key: RoomKey, now_ms: i64) {
        let unbegun = self.state().schedule(key).is_some_and(|s| s.begin_ms == 0);
        if unbegun && self.state().member_count(key) >= 2 {
            self.commit().apply(Mutation::RoomBegan { pid: key.pid, rid: key.rid, at_ms: now_ms });
        }
        self.state().touch(key, now_ms);
    }
}
