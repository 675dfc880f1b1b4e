//! The `redis` engine: the same operations as the embedded one, each made
//! by one function call in the room's partition on the Redis Cluster
//! (`cluster/functions.lua`). The call checks, changes, logs and publishes
//! atomically; every node (this one included) applies the change to its
//! cache when its partition follower sees it, and the caller waits for its
//! own node to have it, so a connection reads its own writes.
//!
//! Reads are served from the node's cache, which the followers keep in
//! step (at most one pub/sub hop, or one probe interval, behind Redis).
//!
//! Operations this engine does not make yet are refused with 10002; see
//! `docs/scale-out.md`.

use std::sync::Arc;
use std::time::Duration;

use rtm_protocol::ErrorCode;
use tracing::warn;

use super::Engine;
use crate::cluster::events::scope_name;
use crate::cluster::feed::{Apply, Feed};
use crate::cluster::{partition_of, Cluster, RedisError};
use crate::error::RtmError;
use crate::model::{BanScope, Mutation, RoomKey};

/// The Redis side of an engine in `redis` mode.
pub(crate) struct Remote {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) feed: Arc<Feed>,
    op_timeout: Duration,
}

impl Remote {
    pub(crate) fn new(cluster: Arc<Cluster>, feed: Arc<Feed>) -> Self {
        let op_timeout = cluster.options().op_timeout;
        Self { cluster, feed, op_timeout }
    }

    /// One function call, then waits for this node's cache to have it.
    async fn change(&self, partition: usize, function: &str, args: Vec<String>) -> Result<(), RtmError> {
        let value = self.cluster.fcall(partition, function, &args).await.map_err(redis_error)?;
        let (epoch, seq, _at_ms): (String, u64, String) = redis::from_redis_value(value)
            .map_err(|e| RtmError::new(ErrorCode::CoreUnknownError, format!("unexpected answer from redis: {e}")))?;
        if !self.feed.applied(partition, &epoch, seq, self.op_timeout).await {
            // Made and durable in Redis; this node will see it when it catches up.
            warn!(partition, seq, "this node has not yet applied its own change");
        }
        Ok(())
    }

    pub(crate) async fn admit(&self, key: RoomKey, uids: &[i64]) -> Result<(), RtmError> {
        let args = [key.pid, key.rid].iter().chain(uids).map(i64::to_string).collect();
        self.change(partition_of(key.pid, key.rid), "rtm_admit", args).await
    }

    pub(crate) async fn remove(&self, key: RoomKey, uids: &[i64]) -> Result<(), RtmError> {
        let args = [key.pid, key.rid].iter().chain(uids).map(i64::to_string).collect();
        self.change(partition_of(key.pid, key.rid), "rtm_remove", args).await
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
        self.change(partition_of(key.pid, key.rid), "rtm_set_info", args).await
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
        self.change(partition_of(pid, scope.rid()), "rtm_ban", args).await
    }

    pub(crate) async fn unban(&self, pid: i64, scope: BanScope, uid: i64) -> Result<(), RtmError> {
        let args = vec![pid.to_string(), scope_name(scope), uid.to_string()];
        self.change(partition_of(pid, scope.rid()), "rtm_unban", args).await
    }
}

fn redis_error(e: RedisError) -> RtmError {
    match e {
        RedisError::Unavailable { .. } => {
            RtmError::new(ErrorCode::CoreTimeout, format!("state store unavailable: {e}"))
        }
        _ => RtmError::new(ErrorCode::CoreUnknownError, format!("state store error: {e}")),
    }
}

/// The followers apply changes through the engine's commit step: the
/// cache changes and this node's listeners get the events.
impl Apply for Engine {
    fn apply(&self, change: Mutation) {
        self.commit().apply(change);
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

impl Engine {
    /// Refuses an operation the `redis` engine does not make yet (10002).
    pub(super) fn embedded_only(&self, what: &str) -> Result<(), RtmError> {
        match self.remote() {
            None => Ok(()),
            Some(_) => Err(RtmError::new(
                ErrorCode::ProtoNotSupported,
                format!("{what} is not supported by the redis engine yet (docs/scale-out.md lists what is)"),
            )),
        }
    }
}
