//! Deadlines of scheduled rooms: the end of the window, `max_seconds` after
//! the room began, and `idle_seconds` without an operation.
//!
//! One task serves every room through a deadline index (a B-tree ordered by
//! time), as for bans: a room costs one index entry (its activity time sits
//! in its schedule entry), and nothing runs while no deadline is due. The
//! idle deadline moves with every operation; rather than touch the index
//! each time, the entry keeps the deadline it was inserted with, and when
//! it fires the room is checked against its latest activity and re-queued
//! if it was active meanwhile.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::schedule::{ReleaseReason, Schedule};
use super::{Mutation, RoomKey, State};
use crate::clock::now_ms;

/// How far `extendroom` and an automatic extension push the end: 15 minutes.
pub(crate) const EXTENSION_MS: i64 = 15 * 60 * 1000;

#[derive(Default)]
pub(crate) struct Lifetimes {
    deadlines: Mutex<BTreeSet<(i64, RoomKey)>>,
    wake: Notify,
}

/// The earliest moment something may happen to a room.
fn next_deadline(schedule: &Schedule, last_activity: i64) -> i64 {
    [schedule.max_duration_deadline(), schedule.idle_deadline(last_activity)]
        .into_iter()
        .flatten()
        .fold(schedule.valid_until_ms, i64::min)
}

impl Lifetimes {
    /// Queues the next deadline of a room whose schedule changed (or whose
    /// deadline came while it was active).
    pub(crate) fn track(&self, key: RoomKey, schedule: &Schedule, last_activity: i64) {
        let at = next_deadline(schedule, last_activity);
        let mut deadlines = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = deadlines.first().is_none_or(|&(first, _)| at < first);
        deadlines.insert((at, key));
        drop(deadlines);
        if earliest {
            self.wake.notify_one();
        }
    }

    fn take_due(&self, now: i64) -> Vec<RoomKey> {
        let mut deadlines = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = Vec::new();
        while let Some(&(at, key)) = deadlines.first() {
            if at > now {
                break;
            }
            deadlines.pop_first();
            due.push(key);
        }
        due
    }

    fn earliest(&self) -> Option<i64> {
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner()).first().map(|&(at, _)| at)
    }
}

impl State {
    /// What is due for one room at `now`: an extension, a release, or
    /// nothing yet (then its next deadline is queued).
    fn settle(&self, key: RoomKey, now: i64) {
        let Some((schedule, last)) = self.schedule_and_activity(key) else { return };
        let lifetimes = &self.inner.lifetimes;
        let RoomKey { pid, rid } = key;
        let release = |reason| self.apply_decided(Mutation::ReleaseRoom { pid, rid, reason });
        if now >= schedule.valid_until_ms {
            if schedule.auto_extend && self.member_count(key) > 0 {
                let valid_until_ms = schedule.valid_until_ms.max(now).saturating_add(EXTENSION_MS);
                self.apply_decided(Mutation::ExtendRoom { pid, rid, valid_until_ms, auto_extend: true });
            } else {
                release(ReleaseReason::Expired);
            }
        } else if schedule.max_duration_deadline().is_some_and(|at| now >= at) {
            release(ReleaseReason::MaxDuration);
        } else if schedule.idle_deadline(last).is_some_and(|at| now >= at) {
            release(ReleaseReason::Idle);
        } else {
            lifetimes.track(key, &schedule, last);
        }
    }

    /// Settles rooms at their deadlines until `token` is cancelled.
    pub(crate) async fn lifetimes_task(self, token: CancellationToken) {
        loop {
            let now = now_ms();
            for key in self.inner.lifetimes.take_due(now) {
                self.settle(key, now);
            }
            let sleep = self
                .inner
                .lifetimes
                .earliest()
                .map_or(Duration::from_secs(3600), |at| Duration::from_millis((at - now_ms()).max(1) as u64));
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.inner.lifetimes.wake.notified() => {}
                _ = token.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(until: i64) -> Schedule {
        Schedule {
            valid_from_ms: 0,
            valid_until_ms: until,
            max_seconds: 0,
            release_threshold: 0,
            idle_seconds: 0,
            begin_ms: 0,
            auto_extend: false,
        }
    }

    #[test]
    fn the_next_deadline_is_the_earliest_policy() {
        assert_eq!(next_deadline(&schedule(10_000), 0), 10_000);
        let s = Schedule { max_seconds: 2, begin_ms: 1_000, ..schedule(10_000) };
        assert_eq!(next_deadline(&s, 0), 3_000);
        let s = Schedule { idle_seconds: 1, ..schedule(10_000) };
        assert_eq!(next_deadline(&s, 500), 1_500);
        let s = Schedule { max_seconds: 2, ..schedule(10_000) };
        assert_eq!(next_deadline(&s, 0), 10_000, "max_seconds counts from the begin time");
    }
}

#[cfg(test)]
mod cost {
    use super::*;

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
        let state = State::default();
        let token = CancellationToken::new();
        let task = tokio::spawn(state.clone().lifetimes_task(token.clone()));
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
            state.apply(Mutation::CreateRoom { pid: 1, rid, schedule, oinfo: None, pinfo: None });
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
