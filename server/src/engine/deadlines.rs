//! What happens to a scheduled room at a deadline, and the background tasks
//! that watch deadlines: room lifetimes and ban expiry.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Engine;
use crate::clock::now_ms;
use crate::model::{Mutation, ReleaseReason, RoomKey};

/// How far `extendroom` and an automatic extension push the end: 15 minutes.
pub(crate) const EXTENSION_MS: i64 = 15 * 60 * 1000;

impl Engine {
    /// What is due for one room at `now`: an extension, a release, or
    /// nothing yet (then its next deadline is queued).
    fn settle(&self, key: RoomKey, now: i64) {
        let _room = self.lock(key);
        let state = self.state();
        let Some((schedule, last)) = state.schedule_and_activity(key) else { return };
        let RoomKey { pid, rid } = key;
        let release = |reason| self.commit().apply_server_decided(Mutation::ReleaseRoom { pid, rid, reason });
        if now >= schedule.valid_until_ms {
            if schedule.auto_extend && state.member_count(key) > 0 {
                let valid_until_ms = schedule.valid_until_ms.max(now).saturating_add(EXTENSION_MS);
                let extend = Mutation::ExtendRoom { pid, rid, valid_until_ms, auto_extend: true };
                self.commit().apply_server_decided(extend);
            } else {
                release(ReleaseReason::Expired);
            }
        } else if schedule.max_duration_deadline().is_some_and(|at| now >= at) {
            release(ReleaseReason::MaxDuration);
        } else if schedule.idle_deadline(last).is_some_and(|at| now >= at) {
            release(ReleaseReason::Idle);
        } else {
            state.lifetimes().track(key, &schedule, last);
        }
    }

    /// Settles rooms at their deadlines until `token` is cancelled.
    pub(crate) async fn lifetimes_task(self, token: CancellationToken) {
        let lifetimes = self.state().lifetimes();
        loop {
            let now = now_ms();
            for key in lifetimes.take_due(now) {
                self.settle(key, now);
            }
            let sleep = lifetimes
                .earliest()
                .map_or(Duration::from_secs(3600), |at| Duration::from_millis((at - now_ms()).max(1) as u64));
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = lifetimes.earlier_deadline() => {}
                _ = token.cancelled() => return,
            }
        }
    }

    /// Starts the engine's background work: room deadlines and the ban purge.
    pub(crate) fn spawn_background(&self, tracker: &TaskTracker, token: CancellationToken) {
        let engine = self.clone();
        let purge = self.state().bans().clone().purge_task(token.clone(), move |expired| {
            engine.commit().bans_expired(expired);
        });
        tracker.spawn(purge);
        match self.remote() {
            // Room deadlines are Redis's due-sets, swept by the nodes in turn.
            Some(remote) => {
                tracker.spawn(super::sweeper::run(remote.clone(), token.clone()));
            }
            None => {
                tracker.spawn(self.clone().lifetimes_task(token.clone()));
            }
        }
        let engine = self.clone();
        tracker.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            loop {
                tokio::select! {
                    _ = every.tick() => engine.forget_old_sends(now_ms()),
                    _ = token.cancelled() => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod cost {
    use super::*;
    use crate::model::Schedule;

    fn rss_and_cpu() -> (u64, u64) {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let rss = statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096;
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        (rss, ticks)
    }

    /// Memory and idle CPU of 100,000 scheduled rooms with every policy
    /// (docs/performance.md). Run with
    /// `cargo test -p rtm-server --release -- --ignored scheduled_room_cost --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn scheduled_room_cost() {
        let engine = Engine::default();
        let token = CancellationToken::new();
        let task = tokio::spawn(engine.clone().lifetimes_task(token.clone()));
        let (rss_before, _) = rss_and_cpu();
        let now = now_ms();
        for rid in 1..=100_000 {
            let schedule = Schedule {
                valid_from_ms: now,
                valid_until_ms: now + 3_600_000 + rid,
                max_seconds: 1800,
                release_threshold: 2,
                idle_seconds: 1200,
                begin_ms: 0,
                auto_extend: true,
            };
            engine.commit().apply(Mutation::CreateRoom { pid: 1, rid, schedule, oinfo: None, pinfo: None });
        }
        let (rss_after, cpu_before) = rss_and_cpu();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (_, cpu_after) = rss_and_cpu();
        println!(
            "100,000 scheduled rooms: {:.1} MiB ({:.0} bytes each); CPU while idle for 5 s: {} ticks of 10 ms",
            (rss_after - rss_before) as f64 / 1048576.0,
            (rss_after - rss_before) as f64 / 100_000.0,
            cpu_after - cpu_before
        );
        assert!(cpu_after - cpu_before <= 2, "idle rooms cost no CPU");
        token.cancel();
        task.await.unwrap();
    }
}
