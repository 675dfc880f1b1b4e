//! Deadlines of scheduled rooms: the end of the window, `max_seconds` after
//! the room began, and `idle_seconds` without an operation.
//!
//! The index lives here; what is due at a deadline is decided in
//! `engine/deadlines.rs`. One task serves every room through a deadline index (a B-tree ordered by
//! time), as for bans: a room costs one index entry (its activity time sits
//! in its schedule entry), and nothing runs while no deadline is due. The
//! idle deadline moves with every operation; rather than touch the index
//! each time, the entry keeps the deadline it was inserted with, and when
//! it fires the room is checked against its latest activity and re-queued
//! if it was active meanwhile.

use std::collections::BTreeSet;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::model::{RoomKey, Schedule};

#[derive(Default)]
pub(crate) struct Lifetimes {
    deadlines: Mutex<BTreeSet<(i64, RoomKey)>>,
    wake: Notify,
    /// Off on the redis engine, whose deadlines are Redis's due-sets: the
    /// node's cache would only pile up entries nobody takes.
    off: std::sync::atomic::AtomicBool,
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
        if self.off.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let at = next_deadline(schedule, last_activity);
        let mut deadlines = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = deadlines.first().is_none_or(|&(first, _)| at < first);
        deadlines.insert((at, key));
        drop(deadlines);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Stops tracking deadlines (the redis engine keeps them in Redis).
    pub(crate) fn turn_off(&self) {
        self.off.store(true, std::sync::atomic::Ordering::Relaxed);
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Removes and returns the rooms whose deadline is at or before `now`.
    pub(crate) fn take_due(&self, now: i64) -> Vec<RoomKey> {
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

    /// The next deadline, if any.
    pub(crate) fn earliest(&self) -> Option<i64> {
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner()).first().map(|&(at, _)| at)
    }
}

impl Lifetimes {
    /// Resolves when a deadline earlier than the one slept for is queued.
    pub(crate) async fn earlier_deadline(&self) {
        self.wake.notified().await;
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
