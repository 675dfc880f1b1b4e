//! How a node follows the partitions: one follower task per partition, fed
//! by one sharded subscriber connection per master.
//!
//! A follower keeps its partition's `(epoch, seq)` and applies each change
//! once, in sequence order, to the node's cache (through [`Apply`]):
//! - the next `seq` is applied;
//! - an older one is dropped (a duplicate);
//! - a newer one means missed messages: the gap is read from the
//!   partition log (`XRANGE`), and if the log no longer holds it, or the
//!   epoch changed (Redis lost the partition's state), the whole partition
//!   is reloaded (`rtm_load`) and the differences applied. Every message
//!   links to the previous one's digest: when a failover loses the log's
//!   tail, the promoted replica reuses sequence numbers for other changes,
//!   and the broken link (or a known sequence number with another digest)
//!   reloads the partition instead of passing for a duplicate. A reload
//!   restores state, not what passed in the gap: messages and kicks there
//!   are not delivered. A partition that had no changes when loaded
//!   adopts its first epoch and reads its first changes from the log.
//!
//! Pub/sub is at most once, and a subscription can silently die in a
//! failover (the `redis` crate's own re-subscription did not come back in
//! our tests), so the follower does not trust it alone: every
//! `check_every` it reads the partition's `seq` and catches up from the
//! log (the idle probe), and a writer that does not see its own change
//! arrive within [`OWN_CHANGE_WAIT`] asks for a catch-up at once.
//!
//! Subscribers are rebuilt on every topology change (a failover, a slot
//! move, a dead connection), from `CLUSTER SLOTS`; a `sunsubscribe` push
//! or a dropped connection marks the topology stale.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::events::{digest, Batch, Change};
use super::partitions::PARTITIONS;
use super::{Cluster, RedisError};
use crate::model::{BanScope, MemberRole, Mutation, Role};

/// How long a writer waits for its own change to come by pub/sub before
/// reading it from the log.
pub(crate) const OWN_CHANGE_WAIT: Duration = Duration::from_millis(50);
/// Messages a follower may have queued; past it, messages are dropped and
/// the follower reads them from the log instead (they are all there), so a
/// slow follower costs bounded memory.
const FOLLOWER_QUEUE: usize = 4096;
/// Most changes read from a log at once; a follower further behind reloads
/// the partition instead (one bounded reply either way).
const MAX_FILL: u64 = 10_000;

/// Applies a change to the node's cache, announces it to this node's
/// listeners, and delivers messages to this node's sessions.
pub(crate) trait Apply: Send + Sync + 'static {
    fn apply(&self, change: Change);
    /// Everything the cache holds for `partition`, as changes that would
    /// rebuild it (for a reload's differences).
    fn export(&self, partition: usize) -> Vec<Mutation>;
}

/// A follower's position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) epoch: String,
    pub(crate) seq: u64,
}

enum Input {
    Message(Vec<u8>),
    CatchUp,
}

/// The node's followers: where each partition stands.
pub(crate) struct Feed {
    inputs: Vec<mpsc::Sender<Input>>,
    /// Set when a message was dropped on a full queue: the follower catches up.
    behind: Arc<[AtomicBool]>,
    positions: Vec<watch::Receiver<Position>>,
}

impl Feed {
    /// Starts a follower per partition and the subscribers; returns once
    /// every partition is loaded.
    pub(crate) async fn start(
        cluster: Arc<Cluster>,
        apply: Arc<dyn Apply>,
        check_every: Duration,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, RedisError> {
        let mut inputs = Vec::with_capacity(PARTITIONS);
        let mut positions = Vec::with_capacity(PARTITIONS);
        let mut followers = Vec::with_capacity(PARTITIONS);
        let behind: Arc<[AtomicBool]> = (0..PARTITIONS).map(|_| AtomicBool::new(false)).collect();
        for partition in 0..PARTITIONS {
            let (input, rx) = mpsc::channel(FOLLOWER_QUEUE);
            let (position, watched) = watch::channel(Position::default());
            let mut follower = Follower {
                partition,
                cluster: cluster.clone(),
                apply: apply.clone(),
                position,
                behind: behind.clone(),
                last: String::new(),
                recent: Default::default(),
            };
            follower.reload().await?;
            inputs.push(input);
            positions.push(watched);
            followers.push((follower, rx));
        }
        let feed = Arc::new(Self { inputs, behind, positions });
        for (follower, rx) in followers {
            tracker.spawn(follower.run(rx, check_every, stop.clone()));
        }
        tracker.spawn(subscribe_task(cluster, feed.clone(), stop));
        Ok(feed)
    }

    /// Waits until this node has applied change `seq` of `partition` (in
    /// `epoch`), so a caller reads its own writes; catches up from the log
    /// if pub/sub is late. Gives up after `timeout`.
    pub(crate) async fn applied(&self, partition: usize, epoch: &str, seq: u64, timeout: Duration) -> bool {
        let mut position = self.positions[partition].clone();
        let reached = |p: &Position| p.epoch == epoch && p.seq >= seq;
        let deadline = tokio::time::Instant::now() + timeout;
        if tokio::time::timeout(OWN_CHANGE_WAIT, position.wait_for(reached)).await.is_ok() {
            return true;
        }
        self.nudge(partition);
        let reached = tokio::time::timeout_at(deadline, position.wait_for(reached)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Queues a partition message (from the channel, or a writer's own answer).
    pub(crate) fn deliver(&self, partition: usize, message: Vec<u8>) {
        if self.inputs[partition].try_send(Input::Message(message)).is_err() {
            self.behind[partition].store(true, Ordering::Relaxed);
        }
    }

    /// Asks `partition`'s follower to catch up from the log.
    fn nudge(&self, partition: usize) {
        if self.inputs[partition].try_send(Input::CatchUp).is_err() {
            // A full queue: the follower is busy and will see the flag.
            self.behind[partition].store(true, Ordering::Relaxed);
        }
    }

    fn catch_up_all(&self) {
        (0..PARTITIONS).for_each(|partition| self.nudge(partition));
    }
}

struct Follower {
    partition: usize,
    cluster: Arc<Cluster>,
    apply: Arc<dyn Apply>,
    position: watch::Sender<Position>,
    behind: Arc<[AtomicBool]>,
    /// The digest of the newest message applied (empty: unknown).
    last: String,
    /// `(seq, digest)` of the messages applied lately, to tell a duplicate
    /// from a different message under a sequence number a failover reused.
    recent: std::collections::VecDeque<(u64, String)>,
}

/// Digests of applied messages a follower remembers.
const RECENT_DIGESTS: usize = 1024;

/// Whether `link` (a message's link, or Redis's chain head) disagrees with
/// the digest we hold: the partition's history forked (a failover lost the
/// log's tail and the same sequence numbers were used again).
fn forked(link: &str, ours: &str) -> bool {
    !link.is_empty() && !ours.is_empty() && link != ours
}

impl Follower {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>, check_every: Duration, stop: CancellationToken) {
        let mut check = tokio::time::interval(check_every);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                input = rx.recv() => match input {
                    None => return,
                    Some(Input::Message(bytes)) => self.on_message(&bytes).await,
                    Some(Input::CatchUp) => self.catch_up().await,
                },
                _ = check.tick() => self.catch_up().await,
            };
            let result = match result {
                Ok(()) if self.behind[self.partition].swap(false, Ordering::Relaxed) => self.catch_up().await,
                other => other,
            };
            if let Err(e) = result {
                warn!(partition = self.partition, error = %e, "partition follower could not catch up; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = self.catch_up().await;
            }
        }
    }

    fn current(&self) -> Position {
        self.position.borrow().clone()
    }

    async fn on_message(&mut self, bytes: &[u8]) -> Result<(), RedisError> {
        let sum = digest(bytes);
        let batch = match Batch::decode(bytes) {
            Ok(batch) => batch,
            Err(e) => {
                warn!(partition = self.partition, error = %e, "dropping a partition message");
                return self.catch_up().await;
            }
        };
        let at = self.current();
        if at.epoch.is_empty() && at.seq == 0 {
            // The partition's first changes (it had none when loaded): read them from the log.
            self.position.send_replace(Position { epoch: batch.epoch.clone(), seq: 0 });
            return self.fill(1, batch.seq).await;
        }
        if batch.epoch != at.epoch {
            info!(partition = self.partition, epoch = %batch.epoch, "partition epoch changed: reloading");
            return self.reload().await;
        }
        if batch.seq <= at.seq {
            let reused = self.recent.iter().any(|(seq, known)| *seq == batch.seq && *known != sum);
            if reused {
                info!(
                    partition = self.partition,
                    seq = batch.seq,
                    "a sequence number came back with another change: reloading"
                );
                return self.reload().await;
            }
            return Ok(());
        }
        if batch.seq > at.seq + 1 {
            debug!(partition = self.partition, from = at.seq + 1, to = batch.seq, "gap: reading the log");
            return self.fill(at.seq + 1, batch.seq).await;
        }
        if forked(&batch.link, &self.last) {
            info!(partition = self.partition, seq = batch.seq, "the partition's history forked: reloading");
            return self.reload().await;
        }
        self.commit(batch, sum);
        Ok(())
    }

    fn commit(&mut self, batch: Batch, sum: String) {
        for change in batch.changes {
            self.apply.apply(change);
        }
        if self.recent.len() == RECENT_DIGESTS {
            self.recent.pop_front();
        }
        self.recent.push_back((batch.seq, sum.clone()));
        self.last = sum;
        self.position.send_replace(Position { epoch: batch.epoch, seq: batch.seq });
    }

    /// Reads the partition's sequence number and catches up to it.
    async fn catch_up(&mut self) -> Result<(), RedisError> {
        let key = format!("{}:meta", self.cluster.layout().prefix(self.partition));
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(key).arg("epoch").arg("seq").arg("last");
        let (epoch, seq, head): (Option<String>, Option<u64>, Option<String>) =
            redis::from_redis_value(self.cluster.call(self.partition, &cmd).await?)
                .map_err(|e| RedisError::Refused(e.to_string()))?;
        let at = self.current();
        let (epoch, seq) = (epoch.unwrap_or_default(), seq.unwrap_or(0));
        if seq == at.seq && epoch == at.epoch && forked(head.as_deref().unwrap_or(""), &self.last) {
            info!(
                partition = self.partition,
                seq, "the partition's newest change is not the one applied here: reloading"
            );
            return self.reload().await;
        }
        if at.epoch.is_empty() && at.seq == 0 && !epoch.is_empty() {
            // The partition's first changes: read them from the log.
            self.position.send_replace(Position { epoch, seq: 0 });
            return self.fill(1, seq).await;
        }
        if epoch != at.epoch || seq < at.seq {
            info!(partition = self.partition, "partition epoch changed or went back: reloading");
            return self.reload().await;
        }
        if seq > at.seq {
            self.fill(at.seq + 1, seq).await?;
        }
        Ok(())
    }

    /// Applies changes `from..=to` from the log; reloads if the log no
    /// longer has `from`.
    async fn fill(&mut self, from: u64, to: u64) -> Result<(), RedisError> {
        if to < from {
            return Ok(());
        }
        if to - from >= MAX_FILL {
            info!(partition = self.partition, missed = to - from + 1, "too far behind to read the log: reloading");
            return self.reload().await;
        }
        let key = format!("{}:log", self.cluster.layout().prefix(self.partition));
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(key).arg(format!("{from}-0")).arg(format!("{to}-1")).arg("COUNT").arg(MAX_FILL);
        let entries: Vec<(String, HashMap<String, Vec<u8>>)> =
            redis::from_redis_value(self.cluster.call(self.partition, &cmd).await?)
                .map_err(|e| RedisError::Refused(e.to_string()))?;
        let mut expected = from;
        for (_, fields) in entries {
            let Some(bytes) = fields.get("e") else { continue };
            let Ok(batch) = Batch::decode(bytes) else { continue };
            if batch.epoch != self.current().epoch || batch.seq != expected {
                break;
            }
            if forked(&batch.link, &self.last) {
                info!(partition = self.partition, seq = batch.seq, "the partition's history forked: reloading");
                return self.reload().await;
            }
            expected += 1;
            self.cluster.stats.log_fills.fetch_add(1, Ordering::Relaxed);
            self.commit(batch, digest(bytes));
        }
        if expected <= to {
            info!(partition = self.partition, missing = expected, "the log no longer holds a missed change: reloading");
            return self.reload().await;
        }
        Ok(())
    }

    /// Loads the partition's whole state and applies what differs from the
    /// cache.
    async fn reload(&mut self) -> Result<(), RedisError> {
        self.cluster.stats.reloads.fetch_add(1, Ordering::Relaxed);
        let value = self.cluster.fcall_read(self.partition, "rtm_load").await?;
        let bytes: Vec<u8> = redis::from_redis_value(value).map_err(|e| RedisError::Refused(e.to_string()))?;
        let batch = Batch::decode(&bytes).map_err(|e| RedisError::Refused(e.to_string()))?;
        for change in differences(self.apply.export(self.partition), &batch.changes) {
            self.apply.apply(Change::State(change));
        }
        for change in batch.changes.iter().cloned() {
            self.apply.apply(change);
        }
        // A load's link is the chain's head: the newest message's digest.
        self.last = batch.link;
        self.recent.clear();
        self.position.send_replace(Position { epoch: batch.epoch, seq: batch.seq });
        Ok(())
    }
}

/// What must be undone in the cache (`cached`) so that applying `loaded`
/// leaves exactly the loaded state: members, info, roles, modes, bans and
/// scheduled rooms it no longer has.
fn differences(cached: Vec<Mutation>, loaded: &[Change]) -> Vec<Mutation> {
    let mut members: HashMap<(i64, i64), BTreeSet<i64>> = HashMap::new();
    let mut infos = BTreeSet::new();
    let mut bans: BTreeSet<(i64, BanScope, i64)> = BTreeSet::new();
    let mut roles: HashMap<(i64, i64, i64), Role> = HashMap::new();
    let mut modes: BTreeSet<(i64, i64, i64)> = BTreeSet::new();
    let mut scheduled: BTreeSet<(i64, i64)> = BTreeSet::new();
    for change in loaded {
        if let Change::Schedule { room, .. } = change {
            scheduled.insert((room.pid, room.rid));
        }
        let Change::State(change) = change else { continue };
        match change {
            Mutation::AddMembers { pid, rid, uids, .. } => {
                members.entry((*pid, *rid)).or_default().extend(uids.iter().copied());
            }
            Mutation::SetRoomInfo { pid, rid, .. } => {
                infos.insert((*pid, *rid));
            }
            Mutation::AddBan { pid, scope, uid, .. } => {
                bans.insert((*pid, *scope, *uid));
            }
            Mutation::UpsertMembers { pid, rid, members: upserted, .. } => {
                roles.extend(upserted.iter().map(|m| ((*pid, *rid, m.uid), m.role)));
            }
            Mutation::SetMemberMode { pid, rid, uid, .. } => {
                modes.insert((*pid, *rid, *uid));
            }
            _ => {}
        }
    }
    let mut undo = Vec::new();
    for change in cached {
        match change {
            Mutation::AddMembers { pid, rid, uids, .. } => {
                let kept = members.get(&(pid, rid));
                let gone: Vec<i64> = uids.into_iter().filter(|u| !kept.is_some_and(|k| k.contains(u))).collect();
                if !gone.is_empty() {
                    undo.push(Mutation::RemoveMembers { pid, rid, uids: gone });
                }
            }
            Mutation::SetRoomInfo { pid, rid, .. } if !infos.contains(&(pid, rid)) => {
                undo.push(Mutation::SetRoomInfo { pid, rid, oinfo: Some(String::new()), pinfo: Some(String::new()) });
            }
            Mutation::AddBan { pid, scope, uid, .. } if !bans.contains(&(pid, scope, uid)) => {
                undo.push(Mutation::RemoveBan { pid, scope, uid });
            }
            // A scheduled room Redis no longer has was released (this node missed it).
            Mutation::CreateRoom { pid, rid, .. } if !scheduled.contains(&(pid, rid)) => {
                undo.push(Mutation::ReleaseRoom { pid, rid, reason: crate::model::ReleaseReason::Deleted });
            }
            Mutation::RestoreParticipants { pid, rid, participants } => {
                let kept = members.get(&(pid, rid));
                for record in participants.iter().filter(|r| kept.is_some_and(|k| k.contains(&r.uid))) {
                    let key = (pid, rid, record.uid);
                    // A role Redis no longer has goes back to attendee (the
                    // loaded roles and modes are applied after this).
                    if record.participant.role != Role::Attendee && !roles.contains_key(&key) {
                        let members = vec![MemberRole { uid: record.uid, role: Role::Attendee }];
                        undo.push(Mutation::UpsertMembers { pid, rid, members, at_ms: 0 });
                        continue;
                    }
                    let role = roles.get(&key).copied().unwrap_or(Role::Attendee);
                    if record.participant.mode != role.default_mode() && !modes.contains(&key) {
                        let mode = role.default_mode();
                        undo.push(Mutation::SetMemberMode { pid, rid, uid: record.uid, mode });
                    }
                }
            }
            _ => {}
        }
    }
    undo
}

/// Keeps one sharded subscriber per master, rebuilt on every topology
/// change; routes messages to the followers.
async fn subscribe_task(cluster: Arc<Cluster>, feed: Arc<Feed>, stop: CancellationToken) {
    let mut generations = cluster.generations();
    loop {
        let (pushes, mut rx) = mpsc::unbounded_channel::<PushInfo>();
        let mut connections = Vec::new();
        let mut complete = true;
        for (addr, partitions) in cluster.partition_masters() {
            let config = AsyncConnectionConfig::new().set_push_sender(pushes.clone());
            match cluster.open(&addr, config, true).await {
                Ok(mut conn) => {
                    let mut ok = true;
                    for &partition in &partitions {
                        let mut cmd = redis::cmd("SSUBSCRIBE");
                        cmd.arg(cluster.layout().channel(partition));
                        if let Err(e) = cmd.query_async::<Value>(&mut conn).await {
                            warn!(%addr, error = %e, "SSUBSCRIBE failed");
                            ok = false;
                            break;
                        }
                    }
                    if !ok {
                        cluster.mark_stale();
                        complete = false;
                    }
                    connections.push(conn);
                }
                Err(e) => {
                    warn!(%addr, error = %e, "cannot open a subscriber connection");
                    cluster.mark_stale();
                    complete = false;
                }
            }
        }
        drop(pushes);
        // What was published while we (re)subscribed comes from the logs.
        feed.catch_up_all();
        // A master we could not subscribe to is tried again soon, topology change or not.
        let retry = tokio::time::sleep(if complete { Duration::MAX / 4 } else { Duration::from_millis(500) });
        tokio::pin!(retry);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = &mut retry => break,
                changed = generations.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                push = rx.recv() => {
                    let Some(push) = push else {
                        // Every subscriber connection is gone.
                        cluster.mark_stale();
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    };
                    match push.kind {
                        PushKind::SMessage => {
                            if let [Value::BulkString(channel), Value::BulkString(message)] = &push.data[..] {
                                if let Some(partition) = cluster.layout().partition_of_channel(channel) {
                                    feed.deliver(partition, message.clone());
                                }
                            }
                        }
                        PushKind::SUnsubscribe | PushKind::Disconnection => {
                            // Rebuilt even if the topology stays the same (a master
                            // restarted in place, a killed subscriber): the probe
                            // covers the moments in between.
                            debug!(kind = ?push.kind, "a subscription ended: resubscribing");
                            cluster.mark_stale();
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            break;
                        }
                        _ => {}
                    }
                }
            }
        }
        drop(connections);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_undoes_what_redis_no_longer_has() {
        let cached = vec![
            Mutation::AddMembers { pid: 1, rid: 7, uids: vec![1, 2, 3], at_ms: 0 },
            Mutation::AddMembers { pid: 1, rid: 8, uids: vec![4], at_ms: 0 },
            Mutation::SetRoomInfo { pid: 1, rid: 8, oinfo: Some("x".into()), pinfo: None },
            Mutation::AddBan { pid: 1, scope: BanScope::Room(7), uid: 2, expires_at_ms: None },
        ];
        let loaded = vec![Change::State(Mutation::AddMembers { pid: 1, rid: 7, uids: vec![2], at_ms: 0 })];
        assert_eq!(
            differences(cached, &loaded),
            vec![
                Mutation::RemoveMembers { pid: 1, rid: 7, uids: vec![1, 3] },
                Mutation::RemoveMembers { pid: 1, rid: 8, uids: vec![4] },
                Mutation::SetRoomInfo { pid: 1, rid: 8, oinfo: Some(String::new()), pinfo: Some(String::new()) },
                Mutation::RemoveBan { pid: 1, scope: BanScope::Room(7), uid: 2 },
            ]
        );
    }

    #[test]
    fn a_reload_undoes_roles_and_modes_redis_no_longer_has() {
        use crate::model::{Mode, Participant, ParticipantRecord};
        let record =
            |uid, role, mode| ParticipantRecord { uid, participant: Participant { role, mode, joined_at_ms: 0 } };
        let cached = vec![
            Mutation::AddMembers { pid: 1, rid: 7, uids: vec![1, 2, 3, 4], at_ms: 0 },
            Mutation::RestoreParticipants {
                pid: 1,
                rid: 7,
                participants: vec![
                    record(1, Role::Presenter, Mode::SendReceive), // Redis: attendee
                    record(2, Role::Attendee, Mode::Neither),      // Redis: mode 1
                    record(3, Role::Consumer, Mode::ReceiveOnly),  // Redis: the same
                    record(4, Role::Attendee, Mode::SendOnly),     // Redis: mode 2, loaded
                ],
            },
        ];
        let loaded = vec![
            Change::State(Mutation::AddMembers { pid: 1, rid: 7, uids: vec![1, 2, 3, 4], at_ms: 0 }),
            Change::State(Mutation::UpsertMembers {
                pid: 1,
                rid: 7,
                members: vec![MemberRole { uid: 3, role: Role::Consumer }],
                at_ms: 0,
            }),
            Change::State(Mutation::SetMemberMode { pid: 1, rid: 7, uid: 4, mode: Mode::SendOnly }),
        ];
        assert_eq!(
            differences(cached, &loaded),
            vec![
                Mutation::UpsertMembers {
                    pid: 1,
                    rid: 7,
                    members: vec![MemberRole { uid: 1, role: Role::Attendee }],
                    at_ms: 0
                },
                Mutation::SetMemberMode { pid: 1, rid: 7, uid: 2, mode: Mode::SendReceive },
            ]
        );
    }
}
