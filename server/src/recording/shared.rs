//! On the redis engine a recording runs on the node that started it, but
//! any node answers for it: the owner publishes each recording's view to
//! Redis after its passes, and picks up the orders other nodes leave there
//! (a stop, new sender lists) at its next pass. Resource ids are kept there
//! too, so that `startrecording` may reach another node than
//! `acquirerecording` did.
//!
//! Keys, in the project's partition `(pid, 0)` (`p` its prefix):
//! - `p:rec:res:<id>`, hash `{rid, sid?}`: a resource id; 5 minutes, then a
//!   day once a recording has taken it;
//! - `p:rec:<sid>`, hash `{view, stop?, subs?, subs_v?}`: a recording's
//!   last published view (JSON), and the orders for its owner. It lives a
//!   minute past the owner's last publication while the recording runs
//!   (so a dead owner's recordings vanish from the other nodes' answers
//!   until it comes back), `recording.keep_completed_secs` once it ended.

use std::sync::Arc;
use std::time::Duration;

use rtm_protocol::methods::RecordingFile;
use rtm_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

use super::status;
use crate::cluster::partition_of;
use crate::engine::Remote;
use crate::error::RtmError;
use crate::model::RoomKey;

/// A used resource id stays known this long (a second start with it is
/// refused as in progress).
const USED_RESOURCE_TTL_MS: i64 = 24 * 3600 * 1000;
/// A running recording's registry entry outlives its owner's last
/// publication by this much.
pub(crate) const RUNNING_TTL_MS: i64 = 60_000;
/// The owner republishes at least this often while nothing changes.
pub(crate) const REFRESH_MS: i64 = 10_000;
/// How often a node waiting on another's recording looks at its view.
const STOP_POLL: Duration = Duration::from_millis(50);

/// What the other nodes answer for a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SharedView {
    pub(crate) resource_id: String,
    pub(crate) status: i64,
    pub(crate) started_ms: i64,
    pub(crate) files: Vec<RecordingFile>,
    pub(crate) upload_status: String,
}

/// The orders left for a recording's owner.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Orders {
    pub(crate) stop: bool,
    /// New sender lists `(uids, exclude_uids)`, numbered.
    pub(crate) subs: Option<(i64, SenderLists)>,
}

/// `updaterecording`'s lists, `None` = unchanged.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SenderLists {
    pub(crate) uids: Option<Vec<i64>>,
    pub(crate) exclude_uids: Option<Vec<i64>>,
}

/// The registry, on the cluster of the redis engine.
pub(crate) struct Shared {
    remote: Arc<Remote>,
}

fn unexpected(e: impl std::fmt::Display) -> RtmError {
    RtmError::new(ErrorCode::CoreUnknownError, format!("recording registry: {e}"))
}

fn not_found(sid: &str) -> RtmError {
    RtmError::new(ErrorCode::RecordingNotFound, format!("no recording {sid}"))
}

/// Each registry operation is one small script, so that a key never loses
/// its expiry half-way and an order is never written into an entry that
/// has just expired (it would live for ever). Scripts, not the `rtm`
/// function library: they touch only the registry's own keys, each named.
mod scripts {
    /// KEYS[1] resource; ARGV rid, ttl_ms.
    pub(super) const PUT_RESOURCE: &str = "redis.call('HSET', KEYS[1], 'rid', ARGV[1]) \
        redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1";
    /// KEYS[1] resource; ARGV sid, ttl_ms: 1 taken, 0 taken by another, -1 unknown.
    pub(super) const CLAIM: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end \
        if redis.call('HSETNX', KEYS[1], 'sid', ARGV[1]) == 0 then return 0 end \
        redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1";
    /// KEYS[1] resource; ARGV sid, ttl_ms: gives the id back if `sid` holds it.
    pub(super) const RELEASE: &str = "if redis.call('HGET', KEYS[1], 'sid') == ARGV[1] then \
        redis.call('HDEL', KEYS[1], 'sid') redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end return 0";
    /// KEYS[1] recording; ARGV view, status, ttl_ms: an ended view is never
    /// replaced by a running one (a late first publication).
    pub(super) const PUBLISH: &str = "local was = redis.call('HGET', KEYS[1], 'status') \
        if was and was ~= '5' and was ~= '6' and (ARGV[2] == '5' or ARGV[2] == '6') then return 0 end \
        redis.call('HSET', KEYS[1], 'view', ARGV[1], 'status', ARGV[2]) \
        redis.call('PEXPIRE', KEYS[1], ARGV[3]) return 1";
    /// KEYS[1] recording: {stop, subs_v, subs}; the sender lists are taken
    /// (deleted) as they are read, so an order is applied once.
    pub(super) const TAKE_ORDERS: &str = "local v = redis.call('HMGET', KEYS[1], 'stop', 'subs_v', 'subs') \
        if v[3] then redis.call('HDEL', KEYS[1], 'subs') end return v";
    /// KEYS[1] recording; ARGV field, value: 1 written, 0 the field was
    /// set already (HSETNX), -1 no such recording.
    pub(super) const ORDER_ONCE: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end \
        return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])";
    /// KEYS[1] recording; ARGV lists: -1 no such recording.
    pub(super) const ORDER_LISTS: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end \
        redis.call('HSET', KEYS[1], 'subs', ARGV[1]) return redis.call('HINCRBY', KEYS[1], 'subs_v', 1)";
}

impl Shared {
    pub(crate) fn new(remote: Arc<Remote>) -> Self {
        Self { remote }
    }

    fn key(&self, pid: i64, name: &str) -> (usize, String) {
        let partition = partition_of(pid, 0);
        (partition, format!("{}:rec:{name}", self.remote.prefix(partition)))
    }

    /// Runs `script` on `key` with `args`.
    async fn eval(
        &self,
        script: &str,
        (partition, key): (usize, String),
        args: &[&str],
    ) -> Result<redis::Value, RtmError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(1).arg(key);
        for arg in args {
            cmd.arg(*arg);
        }
        self.remote.command(partition, &cmd, true).await
    }

    async fn eval_number(&self, script: &str, key: (usize, String), args: &[&str]) -> Result<i64, RtmError> {
        redis::from_redis_value(self.eval(script, key, args).await?).map_err(unexpected)
    }

    /// Keeps resource id `id` of `room` for `ttl_ms`.
    pub(crate) async fn put_resource(&self, room: RoomKey, id: &str, ttl_ms: i64) -> Result<(), RtmError> {
        let key = self.key(room.pid, &format!("res:{id}"));
        self.eval(scripts::PUT_RESOURCE, key, &[&room.rid.to_string(), &ttl_ms.to_string()]).await.map(drop)
    }

    /// The room of resource id `id` and the recording that took it, if
    /// the id is known (not expired).
    pub(crate) async fn resource(&self, pid: i64, id: &str) -> Result<Option<(i64, Option<String>)>, RtmError> {
        let (partition, key) = self.key(pid, &format!("res:{id}"));
        let value = self.remote.command(partition, redis::cmd("HMGET").arg(&key).arg("rid").arg("sid"), false).await?;
        let (rid, sid): (Option<i64>, Option<String>) = redis::from_redis_value(value).map_err(unexpected)?;
        Ok(rid.map(|rid| (rid, sid)))
    }

    /// Takes resource id `id` for recording `sid`; the registry decides
    /// between nodes that start with one id at once.
    pub(crate) async fn claim(&self, pid: i64, id: &str, sid: &str) -> Result<(), RtmError> {
        let key = self.key(pid, &format!("res:{id}"));
        match self.eval_number(scripts::CLAIM, key, &[sid, &USED_RESOURCE_TTL_MS.to_string()]).await? {
            1 => Ok(()),
            0 => Err(RtmError::new(
                ErrorCode::RecordingInProgress,
                "a recording runs with this resource id already (started on another node)",
            )),
            _ => Err(RtmError::new(ErrorCode::RecordingResourceInvalid, "resource id expired (valid 5 minutes)")),
        }
    }

    /// Gives resource id `id` back, if recording `sid` (which did not start
    /// after all) holds it; usable again for the rest of 5 minutes.
    pub(crate) async fn release(&self, pid: i64, id: &str, sid: &str) -> Result<(), RtmError> {
        let key = self.key(pid, &format!("res:{id}"));
        let ttl = super::RESOURCE_TTL_MS.to_string();
        self.eval(scripts::RELEASE, key, &[sid, &ttl]).await.map(drop)
    }

    /// [`Shared::release`] from a destructor: on a task of its own.
    pub(crate) fn release_later(&self, pid: i64, id: String, sid: String) {
        let registry = Self { remote: self.remote.clone() };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = registry.release(pid, &id, &sid).await {
                    tracing::warn!(sid, error = %e.ex, "recording registry: a resource id not given back (it expires)");
                }
            });
        }
    }

    /// Publishes recording `sid`'s view, to live `ttl_ms`; an ended view
    /// already there stays.
    pub(crate) async fn publish(&self, pid: i64, sid: &str, view: &SharedView, ttl_ms: i64) -> Result<(), RtmError> {
        let json = serde_json::to_string(view).map_err(unexpected)?;
        let args = [json.as_str(), &view.status.to_string(), &ttl_ms.to_string()];
        self.eval(scripts::PUBLISH, self.key(pid, sid), &args).await.map(drop)
    }

    /// Recording `sid`'s last published view, and whether a stop was asked.
    pub(crate) async fn view(&self, pid: i64, sid: &str) -> Result<(SharedView, bool), RtmError> {
        let (partition, key) = self.key(pid, sid);
        let value =
            self.remote.command(partition, redis::cmd("HMGET").arg(&key).arg("view").arg("stop"), false).await?;
        let (view, stop): (Option<String>, Option<String>) = redis::from_redis_value(value).map_err(unexpected)?;
        let view = view.ok_or_else(|| not_found(sid))?;
        Ok((serde_json::from_str(&view).map_err(unexpected)?, stop.is_some()))
    }

    /// The orders left for recording `sid`'s owner (taken: each set of
    /// sender lists is returned once).
    pub(crate) async fn orders(&self, pid: i64, sid: &str) -> Result<Orders, RtmError> {
        let value = self.eval(scripts::TAKE_ORDERS, self.key(pid, sid), &[]).await?;
        let (stop, version, subs): (Option<String>, Option<i64>, Option<String>) =
            redis::from_redis_value(value).map_err(unexpected)?;
        let subs = match (version, subs) {
            (Some(version), Some(subs)) => Some((version, serde_json::from_str(&subs).map_err(unexpected)?)),
            _ => None,
        };
        Ok(Orders { stop: stop.is_some(), subs })
    }

    /// `updaterecording` on another node's recording.
    pub(crate) async fn update(&self, pid: i64, sid: &str, lists: &SenderLists) -> Result<(), RtmError> {
        let (view, stop) = self.view(pid, sid).await?;
        if view.status != status::RECORDING || stop {
            return Err(RtmError::new(ErrorCode::RecordingStopped, "the recording has ended"));
        }
        let json = serde_json::to_string(lists).map_err(unexpected)?;
        match self.eval_number(scripts::ORDER_LISTS, self.key(pid, sid), &[&json]).await? {
            -1 => Err(not_found(sid)),
            _ => Ok(()),
        }
    }

    /// `stoprecording` on another node's recording: asks its owner, then
    /// waits (at most `within`) for the view of its end, and then (at most
    /// `upload_wait`) for its files to be in the bucket, as the owner would.
    /// Redis failing now and then while it waits is waited out.
    pub(crate) async fn stop(
        &self,
        pid: i64,
        sid: &str,
        (within, upload_wait): (Duration, Duration),
    ) -> Result<Option<SharedView>, RtmError> {
        let (view, stop) = self.view(pid, sid).await?;
        if view.status != status::RECORDING || stop {
            return Err(stopped_already());
        }
        match self.eval_number(scripts::ORDER_ONCE, self.key(pid, sid), &["stop", "1"]).await? {
            -1 => return Err(not_found(sid)),
            0 => return Err(stopped_already()),
            _ => {}
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut ended_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::time::sleep(STOP_POLL).await;
            let now = tokio::time::Instant::now();
            match self.view(pid, sid).await {
                Ok((view, _)) if ended(view.status) => {
                    let since = *ended_at.get_or_insert(now);
                    if view.upload_status != "backuped" || now >= since + upload_wait {
                        return Ok(Some(view));
                    }
                }
                Ok(_) | Err(_) if now >= deadline => return Ok(None),
                Ok(_) | Err(_) => {}
            }
        }
    }
}

/// The methods' way to a recording: this node's first, then (redis engine)
/// another node's through the registry.
impl super::Recordings {
    /// The registry, when `local` failed only because the recording is
    /// not this node's.
    fn elsewhere<T>(&self, local: &Result<T, RtmError>) -> Option<&Shared> {
        match local {
            Err(e) if e.code == ErrorCode::RecordingNotFound => self.shared(),
            _ => None,
        }
    }

    /// `queryrecording`: the status (6 while a stop is pending), and the upload status.
    pub(crate) async fn query_anywhere(
        &self,
        pid: i64,
        sid: &str,
        now_ms: i64,
    ) -> Result<(super::Snapshot, String), RtmError> {
        let local = self.query(pid, sid, now_ms);
        let Some(registry) = self.elsewhere(&local) else {
            return local.map(|(snapshot, upload)| (snapshot, upload.to_owned()));
        };
        let (view, stop_asked) = Box::pin(registry.view(pid, sid)).await?;
        let status = match view.status {
            status::RECORDING if stop_asked => status::STOP_REQUESTED,
            other => other,
        };
        Ok((super::Snapshot { status, started_ms: view.started_ms, files: view.files }, view.upload_status))
    }

    /// `updaterecording`: another node's owner applies the lists after its next pass.
    pub(crate) async fn update_anywhere(
        &self,
        pid: i64,
        sid: &str,
        lists: SenderLists,
        now_ms: i64,
    ) -> Result<(), RtmError> {
        let local = self.update(pid, sid, lists.uids.clone(), lists.exclude_uids.clone(), now_ms);
        match self.elsewhere(&local) {
            Some(registry) => Box::pin(registry.update(pid, sid, &lists)).await,
            None => local,
        }
    }

    /// The resource id recording `sid` was started with.
    pub(crate) async fn resource_id_anywhere(&self, pid: i64, sid: &str) -> Result<String, RtmError> {
        let local = self.resource_id(pid, sid);
        match self.elsewhere(&local) {
            Some(registry) => Box::pin(registry.view(pid, sid)).await.map(|(view, _)| view.resource_id),
            None => local,
        }
    }
}

/// Whether a recording in `status` has ended (not recording, not stopping).
pub(crate) fn ended(status: i64) -> bool {
    status != status::RECORDING && status != status::STOP_REQUESTED
}

fn stopped_already() -> RtmError {
    RtmError::new(ErrorCode::RecordingStopped, "stoprecording was called already, or the recording ended")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_and_lists_read_back_as_written() {
        let view = SharedView {
            resource_id: "r".into(),
            status: status::EXITED,
            started_ms: 5,
            files: vec![RecordingFile {
                filename: "1/2/x.manifest.json".into(),
                uid: "0".into(),
                ..Default::default()
            }],
            upload_status: "uploaded".into(),
        };
        let json = serde_json::to_string(&view).unwrap();
        assert_eq!(serde_json::from_str::<SharedView>(&json).unwrap(), view);
        let lists = SenderLists { uids: None, exclude_uids: Some(vec![3]) };
        let json = serde_json::to_string(&lists).unwrap();
        assert_eq!(serde_json::from_str::<SenderLists>(&json).unwrap(), lists);
    }
}
