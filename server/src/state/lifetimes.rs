//! Deadlines of scheduled rooms: the end of the window, `max_seconds` after
//! the room began, and `idle_seconds` without an operation.
//!
//! One task serves every room through a deadline index (a B-tree ordered by
//! time), as for bans: a room costs one index entry and one activity
//! timestamp, and nothing runs while no deadline is due. The idle deadline
//! moves with every operation; rather than touch the index each time, the
//! entry keeps the deadline it was inserted with, and when it fires the
//! room is checked against its latest activity and re-queued if it was
//! active meanwhile.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use dashmap::DashMap;
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
    /// Last operation on each scheduled room, Unix milliseconds.
    activity: DashMap<RoomKey, i64>,
}

/// The earliest moment something may happen to a room.
fn next_deadline(schedule: &Schedule, last_activity: i64) -> i64 {
    let mut at = schedule.valid_until_ms;
    if schedule.max_seconds > 0 && schedule.begin_ms > 0 {
        at = at.min(schedule.begin_ms.saturating_add(schedule.max_seconds.saturating_mul(1000)));
    }
    if schedule.idle_seconds > 0 {
        at = at.min(last_activity.saturating_add(schedule.idle_seconds.saturating_mul(1000)));
    }
    at
}

impl Lifetimes {
    /// Queues the next deadline of a room whose schedule changed.
    pub(crate) fn track(&self, key: RoomKey, schedule: &Schedule, now: i64) {
        let last = *self.activity.entry(key).or_insert(now);
        let at = next_deadline(schedule, last);
        let mut deadlines = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = deadlines.first().is_none_or(|&(first, _)| at < first);
        deadlines.insert((at, key));
        drop(deadlines);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Records an operation on a scheduled room (resets its idle clock).
    pub(crate) fn touch(&self, key: RoomKey, now: i64) {
        if let Some(mut last) = self.activity.get_mut(&key) {
            *last = (*last).max(now);
        }
    }

    pub(crate) fn forget(&self, key: &RoomKey) {
        self.activity.remove(key);
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
        let Some(schedule) = self.schedule(key) else { return };
        let lifetimes = &self.inner.lifetimes;
        let last = lifetimes.activity.get(&key).map_or(now, |a| *a);
        let RoomKey { pid, rid } = key;
        let release = |reason| self.apply(Mutation::ReleaseRoom { pid, rid, reason });
        if now >= schedule.valid_until_ms {
            if schedule.auto_extend && self.member_count(key) > 0 {
                let valid_until_ms = schedule.valid_until_ms.max(now).saturating_add(EXTENSION_MS);
                self.apply(Mutation::ExtendRoom { pid, rid, valid_until_ms, auto_extend: true });
            } else {
                release(ReleaseReason::Expired);
            }
        } else if schedule.max_seconds > 0
            && schedule.begin_ms > 0
            && now >= schedule.begin_ms.saturating_add(schedule.max_seconds.saturating_mul(1000))
        {
            release(ReleaseReason::MaxDuration);
        } else if schedule.idle_seconds > 0 && now >= last.saturating_add(schedule.idle_seconds.saturating_mul(1000)) {
            release(ReleaseReason::Idle);
        } else {
            lifetimes.track(key, &schedule, now);
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
