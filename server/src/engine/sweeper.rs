//! Deadlines on the redis engine: scheduled rooms' ends, automatic
//! extensions, maximum durations and idle releases.
//!
//! Each partition keeps its due-set in Redis (`<prefix>:due`, rooms scored
//! by their next deadline; the functions that change a schedule queue it).
//! `rtm_sweep` settles a partition's due rooms in one atomic call, so a
//! room settles once however many nodes sweep at the same time. Nodes
//! share the partitions by their heartbeats: every second each node adds
//! itself to a sorted set of live nodes (`rtm_heartbeat`, Redis's clock,
//! 5 s to live) and sweeps the partitions `p` with `p % n == i`, where it
//! is the `i`-th of the `n` live nodes. A node that stops takes itself off
//! the list, and the others take its partitions at their next heartbeat;
//! one that dies, within about 5 s. While the list changes, two nodes may
//! sweep one partition for a moment, which costs a call and changes
//! nothing.
//!
//! A sweep answers the earliest deadline left, and the node comes back
//! then (every 5 s at least); a schedule change this node applies (made
//! anywhere) wakes its partition's sweep, since its deadline may now come
//! sooner.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Remote;
use crate::cluster::partitions::PARTITIONS;

/// How often a node says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node whose last heartbeat is older is taken for dead.
const HEARTBEAT_TTL: Duration = Duration::from_secs(5);
/// A partition is swept at least this often (a deadline this node did not hear of).
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// Wake-ups for the sweep task, and what it owns (for metrics).
#[derive(Default)]
pub(crate) struct Sweeper {
    woken: Mutex<BTreeSet<usize>>,
    wake: Notify,
    /// Partitions this node sweeps now.
    pub(crate) owned: AtomicUsize,
}

impl Sweeper {
    /// Partition `partition`'s deadlines may have come nearer.
    pub(crate) fn wake(&self, partition: usize) {
        self.woken.lock().unwrap_or_else(|e| e.into_inner()).insert(partition);
        self.wake.notify_one();
    }

    fn take_woken(&self) -> BTreeSet<usize> {
        std::mem::take(&mut *self.woken.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The partitions node `me` sweeps among `live` nodes (`None`: not listed yet).
fn owned_by(me: &str, mut live: Vec<String>) -> Option<Vec<usize>> {
    live.sort();
    let i = live.iter().position(|n| n == me)?;
    Some((0..PARTITIONS).filter(|p| p % live.len() == i).collect())
}

/// Sweeps this node's partitions until `stop`.
pub(crate) async fn run(remote: Arc<Remote>, stop: CancellationToken) {
    let sweeper = remote.sweeper.clone();
    let me = remote.node_id().to_string();
    let mut owned: Vec<usize> = Vec::new();
    let mut next: Vec<Option<Instant>> = vec![None; PARTITIONS];
    let mut next_beat = Instant::now();
    loop {
        if stop.is_cancelled() {
            leave(&remote, &me).await;
            return;
        }
        let now = Instant::now();
        if now >= next_beat {
            let beat = tokio::select! {
                beat = remote.heartbeat(&me, HEARTBEAT_TTL) => beat,
                _ = stop.cancelled() => continue,
            };
            match beat {
                Ok(live) => {
                    let mine = owned_by(&me, live).unwrap_or_default();
                    for &p in mine.iter().filter(|p| !owned.contains(p)) {
                        // Newly ours: whatever is due there is ours to settle now.
                        next[p] = Some(now);
                    }
                    owned = mine;
                    sweeper.owned.store(owned.len(), Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(error = %e.ex, "heartbeat failed; sweeping what this node had"),
            }
            next_beat = now + HEARTBEAT;
        }
        for p in sweeper.take_woken() {
            if owned.contains(&p) {
                next[p] = Some(now);
            }
        }
        let mut failed = false;
        for &p in &owned {
            if next[p].is_none_or(|at| at > now) {
                continue;
            }
            if failed {
                // Redis did not answer the one before: try again at the next heartbeat.
                next[p] = Some(next_beat);
                continue;
            }
            let swept = tokio::select! {
                swept = remote.sweep(p) => swept,
                _ = stop.cancelled() => break,
            };
            next[p] = Some(match swept {
                Ok(earliest) => {
                    let look = Instant::now() + LOOK_EVERY;
                    // Measured on Redis's clock (the deadlines'); 10 ms at least, never a spin.
                    earliest.map_or(look, |wait| (Instant::now() + wait.max(Duration::from_millis(10))).min(look))
                }
                Err(e) => {
                    tracing::debug!(partition = p, error = %e.ex, "sweep failed; retried");
                    failed = true;
                    next_beat
                }
            });
        }
        let wake_at = owned.iter().filter_map(|&p| next[p]).min().unwrap_or(next_beat).min(next_beat);
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = sweeper.wake.notified() => {}
        }
    }
}

/// Takes this node off the live nodes (its partitions go to the others at once).
async fn leave(remote: &Remote, me: &str) {
    if let Err(e) = remote.leave_nodes(me).await {
        tracing::debug!(error = %e.ex, "could not leave the live nodes; they notice in 5 s");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_nodes_share_every_partition_once() {
        let live: Vec<String> = ["30", "10", "20"].iter().map(|s| s.to_string()).collect();
        let shares: Vec<Vec<usize>> = ["10", "20", "30"].iter().map(|me| owned_by(me, live.clone()).unwrap()).collect();
        let mut all: Vec<usize> = shares.concat();
        all.sort();
        assert_eq!(all, (0..PARTITIONS).collect::<Vec<_>>());
        assert!(shares.iter().all(|s| s.len() == 42 || s.len() == 43));
        assert_eq!(owned_by("40", live), None, "a node not listed yet sweeps nothing");
    }
}
