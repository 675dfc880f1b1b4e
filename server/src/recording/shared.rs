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

impl Shared {
    pub(crate) fn new(remote: Arc<Remote>) -> Self {
        Self { remote }
    }

    fn key(&self, pid: i64, name: &str) -> (usize, String) {
        let partition = partition_of(pid, 0);
        (partition, format!("{}:rec:{name}", self.remote.prefix(partition)))
    }

    /// Keeps resource id `id` of `room` for `ttl_ms`.
    pub(crate) async fn put_resource(&self, room: RoomKey, id: &str, ttl_ms: i64) -> Result<(), RtmError> {
        let (partition, key) = self.key(room.pid, &format!("res:{id}"));
        self.remote.command(partition, redis::cmd("HSET").arg(&key).arg("rid").arg(room.rid), true).await?;
        self.remote.command(partition, redis::cmd("PEXPIRE").arg(&key).arg(ttl_ms), true).await?;
        Ok(())
    }

    /// The room of resource id `id` and the recording that took it, if
    /// the id is known (not expired).
    pub(crate) async fn resource(&self, pid: i64, id: &str) -> Result<Option<(i64, Option<String>)>, RtmError> {
        let (partition, key) = self.key(pid, &format!("res:{id}"));
        let value = self.remote.command(partition, redis::cmd("HMGET").arg(&key).arg("rid").arg("sid"), false).await?;
        let (rid, sid): (Option<i64>, Option<String>) = redis::from_redis_value(value).map_err(unexpected)?;
        Ok(rid.map(|rid| (rid, sid)))
    }

    /// Takes resource id `id` for recording `sid`: false if another
    /// recording took it first.
    pub(crate) async fn claim(&self, pid: i64, id: &str, sid: &str) -> Result<bool, RtmError> {
        let (partition, key) = self.key(pid, &format!("res:{id}"));
        let value = self.remote.command(partition, redis::cmd("HSETNX").arg(&key).arg("sid").arg(sid), true).await?;
        let taken: i64 = redis::from_redis_value(value).map_err(unexpected)?;
        if taken == 1 {
            let ttl = redis::cmd("PEXPIRE").arg(&key).arg(USED_RESOURCE_TTL_MS).clone();
            self.remote.command(partition, &ttl, true).await?;
        }
        Ok(taken == 1)
    }

    /// Publishes recording `sid`'s view, to live `ttl_ms`.
    pub(crate) async fn publish(&self, pid: i64, sid: &str, view: &SharedView, ttl_ms: i64) -> Result<(), RtmError> {
        let (partition, key) = self.key(pid, sid);
        let json = serde_json::to_string(view).map_err(unexpected)?;
        self.remote.command(partition, redis::cmd("HSET").arg(&key).arg("view").arg(json), true).await?;
        self.remote.command(partition, redis::cmd("PEXPIRE").arg(&key).arg(ttl_ms), true).await?;
        Ok(())
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

    /// The orders left for recording `sid`'s owner.
    pub(crate) async fn orders(&self, pid: i64, sid: &str) -> Result<Orders, RtmError> {
        let (partition, key) = self.key(pid, sid);
        let cmd = redis::cmd("HMGET").arg(&key).arg("stop").arg("subs_v").arg("subs").clone();
        let value = self.remote.command(partition, &cmd, false).await?;
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
        let (partition, key) = self.key(pid, sid);
        let json = serde_json::to_string(lists).map_err(unexpected)?;
        self.remote.command(partition, redis::cmd("HSET").arg(&key).arg("subs").arg(json), true).await?;
        self.remote.command(partition, redis::cmd("HINCRBY").arg(&key).arg("subs_v").arg(1), true).await?;
        Ok(())
    }

    /// `stoprecording` on another node's recording: asks its owner, then
    /// waits (at most `within`) for the view of its end, and then (at most
    /// `upload_wait`) for its files to be in the bucket, as the owner would.
    pub(crate) async fn stop(
        &self,
        pid: i64,
        sid: &str,
        (within, upload_wait): (Duration, Duration),
    ) -> Result<Option<SharedView>, RtmError> {
        let (partition, key) = self.key(pid, sid);
        let (view, _) = self.view(pid, sid).await?;
        if view.status != status::RECORDING {
            return Err(stopped_already());
        }
        let value = self.remote.command(partition, redis::cmd("HSETNX").arg(&key).arg("stop").arg("1"), true).await?;
        let asked: i64 = redis::from_redis_value(value).map_err(unexpected)?;
        if asked == 0 {
            return Err(stopped_already());
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut ended: Option<(SharedView, tokio::time::Instant)> = None;
        loop {
            tokio::time::sleep(STOP_POLL).await;
            let (view, _) = self.view(pid, sid).await?;
            let now = tokio::time::Instant::now();
            if view.status != status::RECORDING {
                let since = ended.as_ref().map_or(now, |(_, since)| *since);
                if view.upload_status != "backuped" || now >= since + upload_wait {
                    return Ok(Some(view));
                }
                ended = Some((view, since));
            } else if now >= deadline {
                return Ok(None);
            }
        }
    }
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
