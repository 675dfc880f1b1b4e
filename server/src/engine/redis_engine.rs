//! The `redis` engine: the same operations as the embedded one, each made
//! by one function call in the room's partition on the Redis Cluster
//! (`cluster/functions.lua`). The call checks, changes, logs and publishes
//! atomically; every node (this one included) applies the change to its
//! cache when its partition follower sees it, and the caller waits for its
//! own node to have it, so a connection reads its own writes.
//!
//! Reads are served from the node's cache, which the followers keep in
//! step (at most one pub/sub hop, or one probe interval, behind Redis);
//! message history, which nodes do not cache, is read from Redis by
//! read-only functions (a room's stream, written by the send itself).
//!
//! Operations this engine does not make yet are refused with 10002; see
//! `docs/scale-out.md`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rtm_protocol::ErrorCode;
use tracing::warn;

use super::Engine;
use crate::cluster::events::{reason_name, scope_name, Change};
use crate::cluster::feed::{Apply, Feed};
use crate::cluster::{partition_of, Cluster, RedisError};
use crate::engine::Sender;
use crate::error::RtmError;
use crate::history::{Counted, PageQuery, RetentionRules, StoredMessage};
use crate::model::{
    BanScope, Body, MemberRole, Mode, Mutation, ParticipantRecord, ReleaseReason, RoomKey, RoomMessage, Schedule,
    UserKey,
};
use crate::outbox::Delivery;

/// The Redis side of an engine in `redis` mode.
pub(crate) struct Remote {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) feed: Arc<Feed>,
    op_timeout: Duration,
    /// This node, among the nodes (random per start): a message's origin.
    node: u64,
    /// Message history's rules, when history is on.
    pub(crate) history: Option<RetentionRules>,
    /// The deadline sweeper's wake-ups (`engine/sweeper.rs`).
    pub(crate) sweeper: Arc<super::sweeper::Sweeper>,
    /// When this node last sent a scheduled room's activity (reads touch
    /// rooms; at most one `rtm_keep_alive` a second a room).
    touched: dashmap::DashMap<RoomKey, i64>,
}

impl Remote {
    pub(crate) fn new(cluster: Arc<Cluster>, feed: Arc<Feed>, history: Option<RetentionRules>) -> Self {
        let op_timeout = cluster.options().op_timeout;
        let mut node = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut node);
        // Positive, so it reads back as a number.
        let node = u64::from_le_bytes(node) >> 1;
        let sweeper = Arc::new(super::sweeper::Sweeper::default());
        Self { cluster, feed, op_timeout, node, history, sweeper, touched: Default::default() }
    }

    /// This node's id among the nodes (random per start).
    pub(crate) fn node_id(&self) -> u64 {
        self.node
    }

    /// One function call, then waits for this node's cache to have it;
    /// returns the change's time (Redis's clock).
    async fn change(&self, partition: usize, function: &str, args: Vec<String>) -> Result<i64, RtmError> {
        let value = self.cluster.fcall(partition, function, &args).await.map_err(refusal)?;
        self.committed(partition, value).await
    }

    /// A change whose function answers `extra` more fields after the usual
    /// four: commits it as [`change`](Self::change) does; returns its time
    /// and the extra fields, as strings.
    async fn change_with_extras(
        &self,
        partition: usize,
        function: &str,
        args: &[String],
        extra: usize,
    ) -> Result<(i64, Vec<String>), RtmError> {
        let value = self.cluster.fcall(partition, function, args).await.map_err(refusal)?;
        let mut parts: Vec<redis::Value> = redis::from_redis_value(value).map_err(unexpected)?;
        if parts.len() != 4 + extra {
            return Err(unexpected(format!("{} fields from {function}", parts.len())));
        }
        let extras = parts.split_off(4).into_iter().map(redis::from_redis_value).collect::<Result<_, _>>();
        let extras = extras.map_err(unexpected)?;
        let at_ms = self.committed(partition, redis::Value::Array(parts)).await?;
        Ok((at_ms, extras))
    }

    /// A function's answer `[epoch, seq, at_ms, body]`: hands the body to
    /// this node's follower (it applies it now, in sequence order, instead
    /// of one pub/sub hop later; the channel's copy is then a duplicate)
    /// and waits until it is applied, so the caller reads its own write.
    /// Returns `at_ms`. An empty epoch means nothing changed (a retried
    /// send answered from memory).
    async fn committed(&self, partition: usize, value: redis::Value) -> Result<i64, RtmError> {
        let unexpected =
            |e: String| RtmError::new(ErrorCode::CoreUnknownError, format!("unexpected answer from redis: {e}"));
        let mut parts: Vec<redis::Value> = redis::from_redis_value(value).map_err(|e| unexpected(e.to_string()))?;
        if parts.len() < 3 {
            return Err(unexpected(format!("{} fields", parts.len())));
        }
        let body = (parts.len() > 3).then(|| parts.remove(3));
        let at_ms: String = redis::from_redis_value(parts.remove(2)).map_err(|e| unexpected(e.to_string()))?;
        let seq: u64 = redis::from_redis_value(parts.remove(1)).map_err(|e| unexpected(e.to_string()))?;
        let epoch: String = redis::from_redis_value(parts.remove(0)).map_err(|e| unexpected(e.to_string()))?;
        if epoch.is_empty() {
            return Ok(at_ms.parse().unwrap_or_default());
        }
        if let Some(body) = body.and_then(|b| redis::from_redis_value::<Vec<u8>>(b).ok()) {
            self.feed.deliver(partition, body);
        }
        if !self.feed.applied(partition, &epoch, seq, self.op_timeout).await {
            // Made and durable in Redis; this node will see it when it catches up.
            warn!(partition, seq, "this node has not yet applied its own change");
        }
        Ok(at_ms.parse().unwrap_or_default())
    }

    /// Sends a checked message: membership, mute and mode (for a client)
    /// and the retry rule are checked by the function; returns the mtime.
    pub(crate) async fn send(
        &self,
        message: &RoomMessage,
        sender: Sender,
        all_rooms_muted: bool,
        dedup_ms: i64,
    ) -> Result<i64, RtmError> {
        let (kind, body) = match &message.body {
            Body::Text(text) => ("t", text.as_bytes()),
            Body::Binary(bytes) => ("b", &bytes[..]),
        };
        let (check, origin) = match sender {
            Sender::Client { session } => ("1", format!("{}:{session}", self.node)),
            Sender::Backend => ("0", String::new()),
        };
        let partition = partition_of(message.pid, message.rid);
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("rtm_send").arg(1).arg(self.cluster.layout().prefix(partition));
        cmd.arg(message.pid).arg(message.rid).arg(message.from).arg(message.mid).arg(message.mtype);
        cmd.arg(kind).arg(body).arg(&message.attrs).arg(check).arg(fingerprint(message)).arg(dedup_ms).arg(origin);
        cmd.arg(if all_rooms_muted { "1" } else { "0" });
        match &self.history {
            Some(rules) => {
                let retention = rules.of(message.pid);
                cmd.arg(retention.max_per_room).arg(retention.max_age_ms)
            }
            None => cmd.arg(0).arg(0),
        };
        let value = self.cluster.write(partition, &cmd).await.map_err(refusal)?;
        self.committed(partition, value).await
    }

    /// Adds members with roles, or changes existing members' roles (a new
    /// role sets the role's mode).
    pub(crate) async fn upsert(&self, key: RoomKey, members: &[MemberRole]) -> Result<(), RtmError> {
        let mut args = vec![key.pid.to_string(), key.rid.to_string()];
        for member in members {
            args.push(member.uid.to_string());
            args.push(member.role.as_str().to_owned());
            args.push(member.role.default_mode().code().to_string());
        }
        self.change(partition_of(key.pid, key.rid), "rtm_upsert", args).await.map(drop)
    }

    fn keeps_history(&self, pid: i64) -> &'static str {
        if self.history.as_ref().is_none_or(|rules| rules.of(pid).keep_released) {
            "1"
        } else {
            "0"
        }
    }

    /// Creates a scheduled room (refused if the room exists, or with
    /// members outside its window).
    pub(crate) async fn create_room(
        &self,
        key: RoomKey,
        schedule: &Schedule,
        oinfo: Option<String>,
        pinfo: Option<String>,
        members: &[MemberRole],
    ) -> Result<(), RtmError> {
        let flag = |v: &Option<String>| if v.is_some() { "1" } else { "0" }.to_owned();
        let mut args = vec![
            key.pid.to_string(),
            key.rid.to_string(),
            schedule.valid_from_ms.to_string(),
            schedule.valid_until_ms.to_string(),
            schedule.max_seconds.to_string(),
            schedule.release_threshold.to_string(),
            schedule.idle_seconds.to_string(),
            self.keeps_history(key.pid).to_owned(),
            flag(&oinfo),
            oinfo.unwrap_or_default(),
            flag(&pinfo),
            pinfo.unwrap_or_default(),
        ];
        for member in members {
            args.push(member.uid.to_string());
            args.push(member.role.as_str().to_owned());
            args.push(member.role.default_mode().code().to_string());
        }
        self.change(partition_of(key.pid, key.rid), "rtm_create", args).await.map(drop)
    }

    /// Changes a scheduled room's window (Unix seconds) and policies; `None` keeps a value.
    pub(crate) async fn update_room(&self, key: RoomKey, values: [Option<i64>; 5]) -> Result<(), RtmError> {
        let mut args = vec![key.pid.to_string(), key.rid.to_string()];
        args.extend(values.iter().map(|v| v.map(|v| v.to_string()).unwrap_or_default()));
        self.change(partition_of(key.pid, key.rid), "rtm_update", args).await.map(drop)
    }

    /// Pushes a scheduled room's end out by `by_ms`; `auto` sets whether it
    /// extends itself. Returns the end and the flag this call made (later
    /// calls may have moved the end again by the time it is cached).
    pub(crate) async fn extend_room(
        &self,
        key: RoomKey,
        by_ms: i64,
        auto: Option<bool>,
    ) -> Result<(i64, bool), RtmError> {
        let auto = auto.map(|a| if a { "1" } else { "0" }).unwrap_or_default().to_owned();
        let args = vec![key.pid.to_string(), key.rid.to_string(), by_ms.to_string(), auto];
        let partition = partition_of(key.pid, key.rid);
        let (_, extras) = self.change_with_extras(partition, "rtm_extend", &args, 2).await?;
        Ok((extras[0].parse().map_err(unexpected)?, extras[1] == "1"))
    }

    /// Restarts a room's idle clock; refused if the room does not exist.
    pub(crate) async fn keep_alive(&self, key: RoomKey) -> Result<(), RtmError> {
        let args = [key.pid.to_string(), key.rid.to_string()];
        self.cluster.fcall(partition_of(key.pid, key.rid), "rtm_keep_alive", &args).await.map_err(refusal).map(drop)
    }

    /// A read of scheduled room `key`: restarts its idle clock in Redis,
    /// at most once a second, without waiting.
    pub(crate) fn touch(self: &Arc<Self>, key: RoomKey, now_ms: i64) {
        if self.touched.len() > 10_000 {
            // Only the last second matters.
            self.touched.retain(|_, at| now_ms - *at < 1000);
        }
        let mut last = self.touched.entry(key).or_insert(0);
        if now_ms - *last < 1000 {
            return;
        }
        *last = now_ms;
        drop(last);
        let remote = self.clone();
        tokio::spawn(async move {
            if let Err(e) = remote.keep_alive(key).await {
                tracing::debug!(pid = key.pid, rid = key.rid, error = %e.ex, "activity not recorded");
            }
        });
    }

    /// Says this node is alive (for `ttl`); returns the live nodes' ids.
    pub(crate) async fn heartbeat(&self, me: &str, ttl: Duration) -> Result<Vec<String>, RtmError> {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("rtm_heartbeat").arg(1).arg(self.cluster.layout().prefix(0)).arg(me).arg(ttl.as_millis() as u64);
        let value = self.cluster.call(0, &cmd).await.map_err(refusal)?;
        redis::from_redis_value(value).map_err(unexpected)
    }

    /// Takes this node off the live nodes (it stops sweeping).
    pub(crate) async fn leave_nodes(&self, me: &str) -> Result<(), RtmError> {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("rtm_leave").arg(1).arg(self.cluster.layout().prefix(0)).arg(me);
        self.cluster.call(0, &cmd).await.map_err(refusal).map(drop)
    }

    /// Settles partition `partition`'s rooms whose deadline has come;
    /// returns how long until the earliest deadline left, by Redis's clock.
    pub(crate) async fn sweep(&self, partition: usize) -> Result<Option<Duration>, RtmError> {
        let (at_ms, extras) = self.change_with_extras(partition, "rtm_sweep", &["1000".to_owned()], 1).await?;
        // Scores come back as decimal text, possibly with an exponent; '' = none.
        Ok(extras[0].parse::<f64>().ok().map(|due| Duration::from_millis((due as i64 - at_ms).max(0) as u64)))
    }

    /// Releases a room at once: members, modes and info go.
    pub(crate) async fn release(&self, key: RoomKey, reason: ReleaseReason) -> Result<(), RtmError> {
        let args = vec![
            key.pid.to_string(),
            key.rid.to_string(),
            reason_name(reason).to_owned(),
            self.keeps_history(key.pid).to_owned(),
        ];
        self.change(partition_of(key.pid, key.rid), "rtm_release", args).await.map(drop)
    }

    /// Sets a member's mode; refused (200040) for a non-member.
    pub(crate) async fn set_mode(&self, key: RoomKey, uid: i64, mode: Mode) -> Result<(), RtmError> {
        let args = vec![key.pid.to_string(), key.rid.to_string(), uid.to_string(), mode.code().to_string()];
        self.change(partition_of(key.pid, key.rid), "rtm_set_mode", args).await.map(drop)
    }

    /// Every login token of `user` issued until now stops working.
    pub(crate) async fn revoke_tokens(&self, user: UserKey) -> Result<(), RtmError> {
        let args = vec![user.pid.to_string(), user.uid.to_string()];
        self.change(partition_of(user.pid, 0), "rtm_revoke", args).await.map(drop)
    }

    /// With `close`, closes every session of `user` on every node, but
    /// `except_session` on this node (a single-login policy's newest). With
    /// `except_session`, tells the other nodes the user logged in here.
    pub(crate) async fn kick(&self, user: UserKey, except_session: Option<u64>, close: bool) -> Result<(), RtmError> {
        let except = except_session.map(|s| format!("{}:{s}", self.node)).unwrap_or_default();
        let close = if close { "1" } else { "0" }.to_owned();
        let args = vec![user.pid.to_string(), user.uid.to_string(), except, close];
        self.change(partition_of(user.pid, 0), "rtm_kick", args).await.map(drop)
    }

    /// `user` leaves room `rid` by themself (no `kickoutroom` to them).
    pub(crate) async fn leave(&self, user: UserKey, rid: i64) -> Result<(), RtmError> {
        let args = vec!["leave".into(), user.pid.to_string(), rid.to_string(), user.uid.to_string()];
        self.change(partition_of(user.pid, rid), "rtm_remove", args).await.map(drop)
    }

    pub(crate) async fn admit(&self, key: RoomKey, uids: &[i64]) -> Result<(), RtmError> {
        let args = [key.pid, key.rid].iter().chain(uids).map(i64::to_string).collect();
        self.change(partition_of(key.pid, key.rid), "rtm_admit", args).await.map(drop)
    }

    pub(crate) async fn remove(&self, key: RoomKey, uids: &[i64]) -> Result<(), RtmError> {
        let args =
            std::iter::once("rm".to_owned()).chain([key.pid, key.rid].iter().chain(uids).map(i64::to_string)).collect();
        self.change(partition_of(key.pid, key.rid), "rtm_remove", args).await.map(drop)
    }

    pub(crate) async fn set_info(
        &self,
        key: RoomKey,
        oinfo: Option<String>,
        pinfo: Option<String>,
    ) -> Result<(), RtmError> {
        let flag = |v: &Option<String>| if v.is_some() { "1" } else { "0" }.to_owned();
        let args = vec![
            key.pid.to_string(),
            key.rid.to_string(),
            flag(&oinfo),
            oinfo.unwrap_or_default(),
            flag(&pinfo),
            pinfo.unwrap_or_default(),
        ];
        self.change(partition_of(key.pid, key.rid), "rtm_set_info", args).await.map(drop)
    }

    pub(crate) async fn ban(
        &self,
        pid: i64,
        scope: BanScope,
        uid: i64,
        expires_at_ms: Option<i64>,
    ) -> Result<(), RtmError> {
        let expires = expires_at_ms.map_or_else(|| "-".to_owned(), |ms| ms.to_string());
        let args = vec![pid.to_string(), scope_name(scope), uid.to_string(), expires];
        self.change(partition_of(pid, scope.rid()), "rtm_ban", args).await.map(drop)
    }

    pub(crate) async fn unban(&self, pid: i64, scope: BanScope, uid: i64) -> Result<(), RtmError> {
        let args = vec![pid.to_string(), scope_name(scope), uid.to_string()];
        self.change(partition_of(pid, scope.rid()), "rtm_unban", args).await.map(drop)
    }
}

/// Plain commands for node-side state kept in Redis (the recording
/// registry, `recording/shared.rs`): every key of `cmd` in `partition`.
impl Remote {
    /// The key prefix of `partition` (its hash tag).
    pub(crate) fn prefix(&self, partition: usize) -> &str {
        self.cluster.layout().prefix(partition)
    }

    /// Runs `cmd`; a write waits for `redis_wait_replicas` like a change.
    pub(crate) async fn command(
        &self,
        partition: usize,
        cmd: &redis::Cmd,
        write: bool,
    ) -> Result<redis::Value, RtmError> {
        let answer =
            if write { self.cluster.write(partition, cmd).await } else { self.cluster.call(partition, cmd).await };
        answer.map_err(refusal)
    }
}

/// Message history (`history` must be on: the engine checks).
impl Remote {
    fn retention_args(&self, pid: i64) -> [i64; 2] {
        let retention = self.history.as_ref().map(|rules| rules.of(pid)).unwrap_or(crate::history::Retention {
            max_age_ms: 0,
            max_per_room: 0,
            keep_released: true,
        });
        [retention.max_age_ms, retention.max_per_room]
    }

    /// `command` (`FCALL_RO` for a read, `FCALL`) of history function
    /// `function` on `room`'s partition, with the room's ids; and the partition.
    fn history_call(&self, command: &str, function: &str, room: RoomKey) -> (usize, redis::Cmd) {
        let partition = partition_of(room.pid, room.rid);
        let mut cmd = redis::cmd(command);
        cmd.arg(function).arg(1).arg(self.cluster.layout().prefix(partition)).arg(room.pid).arg(room.rid);
        (partition, cmd)
    }

    /// A page of `room`'s history.
    pub(crate) async fn history_page(&self, room: RoomKey, query: &PageQuery) -> Result<Vec<StoredMessage>, RtmError> {
        let max_page = self.history.as_ref().map_or(0, |rules| rules.max_page);
        self.read_history(room, query, query.num.min(max_page)).await
    }

    /// Up to `limit` of `room`'s messages after id `after`, oldest first
    /// (the recording thread's read: not capped at a page).
    pub(crate) async fn history_after(
        &self,
        room: RoomKey,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, RtmError> {
        let query = PageQuery { desc: false, num: limit, lastid: after, ..PageQuery::default() };
        self.read_history(room, &query, limit).await
    }

    async fn read_history(&self, room: RoomKey, query: &PageQuery, num: usize) -> Result<Vec<StoredMessage>, RtmError> {
        let (partition, mut cmd) = self.history_call("FCALL_RO", "rtm_history_page", room);
        cmd.arg(if query.desc { "1" } else { "0" }).arg(num);
        cmd.arg(query.begin).arg(query.end).arg(query.lastid).arg(&self.retention_args(room.pid)[..]);
        cmd.arg(&query.mtypes);
        let value = self.cluster.call(partition, &cmd).await.map_err(refusal)?;
        rows(value)
    }

    /// How many of `room`'s messages lie in `[begin, end]`, from how many senders.
    pub(crate) async fn history_count(
        &self,
        room: RoomKey,
        (begin, end): (i64, i64),
        mtypes: &[i64],
    ) -> Result<Counted, RtmError> {
        let (partition, mut cmd) = self.history_call("FCALL_RO", "rtm_history_count", room);
        cmd.arg(begin).arg(end).arg(&self.retention_args(room.pid)[..]).arg(mtypes);
        let value = self.cluster.call(partition, &cmd).await.map_err(refusal)?;
        let (messages, senders): (i64, i64) = redis::from_redis_value(value).map_err(unexpected)?;
        Ok(Counted { messages, senders })
    }

    /// The newest message `from` sent in `room` as `mid`, if history shows it.
    pub(crate) async fn history_find(
        &self,
        room: RoomKey,
        (from, mid): (i64, i64),
    ) -> Result<Option<StoredMessage>, RtmError> {
        let (partition, mut cmd) = self.history_call("FCALL_RO", "rtm_history_find", room);
        cmd.arg(from).arg(mid).arg(&self.retention_args(room.pid)[..]);
        let value = self.cluster.call(partition, &cmd).await.map_err(refusal)?;
        Ok(rows(value)?.pop())
    }

    /// Deletes what history shows of the message `from` sent in `room` as `mid`.
    pub(crate) async fn history_delete(&self, room: RoomKey, (from, mid): (i64, i64)) -> Result<(), RtmError> {
        let (partition, mut cmd) = self.history_call("FCALL", "rtm_history_delete", room);
        cmd.arg(from).arg(mid).arg(&self.retention_args(room.pid)[..]);
        self.cluster.write(partition, &cmd).await.map_err(refusal).map(drop)
    }
}

fn unexpected(e: impl std::fmt::Display) -> RtmError {
    RtmError::new(ErrorCode::CoreUnknownError, format!("unexpected answer from redis: {e}"))
}

/// History rows, flat: id, from, mtype, mid, kind, body, attrs, mtime each.
fn rows(value: redis::Value) -> Result<Vec<StoredMessage>, RtmError> {
    let flat: Vec<Vec<u8>> = redis::from_redis_value(value).map_err(unexpected)?;
    if !flat.len().is_multiple_of(8) {
        return Err(unexpected(format!("{} history fields", flat.len())));
    }
    let number = |bytes: &[u8]| -> Result<i64, RtmError> {
        std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).ok_or_else(|| unexpected("a history number"))
    };
    let mut rows = Vec::with_capacity(flat.len() / 8);
    let mut fields = flat.into_iter();
    while let (Some(id), Some(from), Some(mtype), Some(mid), Some(kind), Some(body), Some(attrs), Some(mtime)) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) {
        let body = match &kind[..] {
            b"b" => Body::Binary(body),
            _ => Body::Text(String::from_utf8(body).map_err(|_| unexpected("a text message that is not UTF-8"))?),
        };
        rows.push(StoredMessage {
            id: number(&id)?,
            from: number(&from)?,
            mtype: number(&mtype)?,
            mid: number(&mid)?,
            body,
            attrs: String::from_utf8(attrs).map_err(|_| unexpected("attrs that are not UTF-8"))?,
            mtime: number(&mtime)?,
        });
    }
    Ok(rows)
}

/// A message's content, as a retry must repeat it: SHA-256 of mtype, body
/// and attrs, in hex (stable across builds, unlike std's hasher: nodes of
/// two releases compare it during a rolling upgrade).
fn fingerprint(message: &RoomMessage) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(&message.mtype.to_le_bytes());
    let (kind, body): (&[u8], &[u8]) = match &message.body {
        Body::Text(text) => (b"t", text.as_bytes()),
        Body::Binary(bytes) => (b"b", bytes),
    };
    context.update(kind);
    context.update(&(body.len() as u64).to_le_bytes());
    context.update(body);
    context.update(message.attrs.as_bytes());
    context.finish().as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A function's refusal is a rule (its error code names it); anything else
/// is the store failing.
fn refusal(e: RedisError) -> RtmError {
    if let RedisError::Refused(text) = &e {
        let (code, ex) = text.split_once(' ').unwrap_or((text, ""));
        let rule = match code {
            "NOTINROOM" => Some(ErrorCode::NotInRoom),
            "MUTED" => Some(ErrorCode::BannedInRoom),
            "MODE" => Some(ErrorCode::PermissionDenied),
            "DUPMID" => Some(ErrorCode::DuplicatedMid),
            "WINDOW" => Some(ErrorCode::PermissionDenied),
            "EXISTS" | "NOTSCHEDULED" | "INVALID" | "NOROOM" => Some(ErrorCode::InvalidParameter),
            _ => None,
        };
        if let Some(rule) = rule {
            return RtmError::new(rule, ex.to_owned());
        }
    }
    match e {
        RedisError::Unavailable { .. } => {
            RtmError::new(ErrorCode::CoreTimeout, format!("state store unavailable: {e}"))
        }
        // Made (and delivered), but not yet safe from a failover: a retry is safe.
        RedisError::NotReplicated { .. } => {
            RtmError::new(ErrorCode::CoreTimeout, format!("made but not acknowledged, a retry is safe: {e}"))
        }
        _ => RtmError::new(ErrorCode::CoreUnknownError, format!("state store error: {e}")),
    }
}

/// The followers apply changes through the engine's commit step: the
/// cache changes, this node's listeners get the events, and this node's
/// member sessions the messages.
impl Apply for Engine {
    fn apply(&self, change: Change) {
        match change {
            Change::State(mutation) => {
                if let Mutation::CreateRoom { pid, rid, .. }
                | Mutation::UpdateRoom { pid, rid, .. }
                | Mutation::RoomBegan { pid, rid, .. } = &mutation
                {
                    // A deadline may have come nearer: its partition's sweeper looks again.
                    if let Some(remote) = self.remote() {
                        remote.sweeper.wake(partition_of(*pid, *rid));
                    }
                }
                self.commit().apply(mutation);
            }
            Change::Joined { room, times } => {
                // The roles and modes are in the cache already (the load's changes come in order).
                let (members, _) = self.state().participants_page(room, None, self.state().member_count(room));
                let times: std::collections::HashMap<i64, i64> = times.into_iter().collect();
                let participants: Vec<ParticipantRecord> = members
                    .into_iter()
                    .filter_map(|mut record| {
                        let at = *times.get(&record.uid)?;
                        (record.participant.joined_at_ms != at).then(|| {
                            record.participant.joined_at_ms = at;
                            record
                        })
                    })
                    .collect();
                if !participants.is_empty() {
                    self.commit().apply(Mutation::RestoreParticipants { pid: room.pid, rid: room.rid, participants });
                }
            }
            Change::Schedule { room, schedule } => {
                let RoomKey { pid, rid } = room;
                match self.state().schedule(room) {
                    Some(cached) if cached == schedule => {}
                    Some(cached) => {
                        let window = |s: &Schedule| {
                            (s.valid_from_ms, s.valid_until_ms, s.max_seconds, s.release_threshold, s.idle_seconds)
                        };
                        if window(&cached) != window(&schedule) {
                            self.commit().apply(Mutation::UpdateRoom {
                                pid,
                                rid,
                                valid_from_ms: schedule.valid_from_ms,
                                valid_until_ms: schedule.valid_until_ms,
                                max_seconds: schedule.max_seconds,
                                release_threshold: schedule.release_threshold,
                                idle_seconds: schedule.idle_seconds,
                            });
                        }
                        if cached.auto_extend != schedule.auto_extend {
                            let (valid_until_ms, auto_extend) = (schedule.valid_until_ms, schedule.auto_extend);
                            self.commit().apply(Mutation::ExtendRoom { pid, rid, valid_until_ms, auto_extend });
                        }
                        if cached.begin_ms == 0 && schedule.begin_ms > 0 {
                            self.commit().apply(Mutation::RoomBegan { pid, rid, at_ms: schedule.begin_ms });
                        }
                    }
                    None => {
                        self.commit().apply(Mutation::CreateRoom { pid, rid, schedule, oinfo: None, pinfo: None });
                    }
                }
                if let Some(remote) = self.remote() {
                    remote.sweeper.wake(partition_of(pid, rid));
                }
            }
            Change::ByUser(mutation, user) => {
                self.commit().apply_by(mutation, user);
            }
            Change::Decided(mutation) => {
                self.commit().apply_server_decided(mutation);
            }
            Change::Kick { user, except, close, seq } => {
                let here = self.remote().map(|r| r.node);
                let spared = except.filter(|(node, _)| Some(*node) == here).map(|(_, session)| session);
                if except.is_some_and(|(node, _)| Some(node) != here) {
                    // Logged in on another node: not offline any more.
                    self.presence().back_elsewhere(user);
                }
                self.presence().for_each_session(user, |handle| {
                    if Some(handle.session) == spared {
                        // This login's own notice: later kicks are newer than the login.
                        handle.login_seq.store(seq, Ordering::Relaxed);
                    } else if close && handle.login_seq.load(Ordering::Relaxed) > seq {
                        // Logged in after this kick was made (or its own notice is not applied yet).
                    } else if close {
                        handle.outbox.kick();
                    }
                });
            }
            Change::Message { message, origin } => {
                let here = self.remote().map(|r| r.node);
                // The sender's own session (on the node it was sent from) does not get it back.
                let except = origin.filter(|(node, _)| Some(*node) == here).map(|(_, session)| session);
                self.state().touch(RoomKey { pid: message.pid, rid: message.rid }, message.mtime);
                self.commit().deliver_room_message(Arc::new(Delivery::new(message)), except);
            }
        }
    }

    fn export(&self, partition: usize) -> Vec<Mutation> {
        let mut changes = self.state().export();
        changes.retain(|m| {
            let (pid, rid) = m.room();
            partition_of(pid, rid) == partition
        });
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_and_tell_contents_apart() {
        let message = |mtype, body: Body, attrs: &str| RoomMessage {
            pid: 1,
            rid: 2,
            from: 3,
            mid: 4,
            mtype,
            body,
            attrs: attrs.into(),
            mtime: 0,
        };
        let hello = message(51, Body::Text("hello".into()), "");
        // Pinned (computed independently with Python's hashlib): a rolling
        // upgrade compares fingerprints across builds.
        assert_eq!(fingerprint(&hello), "2346922dc49c16c8f3042daab7bb1399");
        let others = [
            message(52, Body::Text("hello".into()), ""),
            message(51, Body::Binary(b"hello".to_vec()), ""),
            message(51, Body::Text("hello".into()), "a"),
            message(51, Body::Text("hell".into()), "o"),
        ];
        for other in &others {
            assert_ne!(fingerprint(&hello), fingerprint(other), "{other:?}");
        }
    }
}
