//! Taps: a copy of every event of a room, for the recordings that asked for
//! room events (`startrecording {events: true}`). A tap is a bounded buffer
//! the recording thread drains on each pass; while a room has one, its
//! changes are described as events even with no listener.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::lock;
use crate::model::Event;

/// Events a tap holds at most between two drains; more are counted as lost.
pub(crate) const TAP_MAX: usize = 100_000;

/// One recording's copy of its room's events.
#[derive(Default)]
pub(crate) struct Tap {
    events: Mutex<Vec<Event>>,
    lost: AtomicU64,
}

impl Tap {
    /// The events since the last drain, in the order they were published,
    /// and how many did not fit since then.
    pub(crate) fn drain(&self) -> (Vec<Event>, u64) {
        let events = std::mem::take(&mut *lock(&self.events));
        (events, self.lost.swap(0, Ordering::Relaxed))
    }

    fn offer(&self, event: &Event) {
        let mut events = lock(&self.events);
        if events.len() < TAP_MAX {
            events.push(event.clone());
        } else {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Taps by room: `(pid, rid)`.
type ByRoom = HashMap<(i64, i64), Vec<Arc<Tap>>>;

/// The taps, by room.
#[derive(Default)]
pub(crate) struct Taps {
    /// Taps in all: with none, publishing costs one load.
    count: AtomicUsize,
    by_room: RwLock<ByRoom>,
}

impl Taps {
    /// Whether room `rid` of project `pid` is tapped.
    pub(crate) fn has(&self, pid: i64, rid: i64) -> bool {
        self.count.load(Ordering::Acquire) > 0
            && self.by_room.read().unwrap_or_else(|e| e.into_inner()).contains_key(&(pid, rid))
    }

    /// A new tap on room `rid` of project `pid`.
    pub(crate) fn add(&self, pid: i64, rid: i64) -> Arc<Tap> {
        let tap = Arc::new(Tap::default());
        self.by_room.write().unwrap_or_else(|e| e.into_inner()).entry((pid, rid)).or_default().push(tap.clone());
        self.count.fetch_add(1, Ordering::AcqRel);
        tap
    }

    /// Removes `tap` from room `rid` of project `pid`.
    pub(crate) fn remove(&self, pid: i64, rid: i64, tap: &Arc<Tap>) {
        let mut by_room = self.by_room.write().unwrap_or_else(|e| e.into_inner());
        if let Some(taps) = by_room.get_mut(&(pid, rid)) {
            let before = taps.len();
            taps.retain(|t| !Arc::ptr_eq(t, tap));
            if taps.len() < before {
                self.count.fetch_sub(1, Ordering::AcqRel);
            }
            if taps.is_empty() {
                by_room.remove(&(pid, rid));
            }
        }
    }

    /// Copies project `pid`'s events into their rooms' taps.
    pub(crate) fn offer(&self, pid: i64, events: &[Event]) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let by_room = self.by_room.read().unwrap_or_else(|e| e.into_inner());
        for event in events {
            for tap in by_room.get(&(pid, event.rid)).into_iter().flatten() {
                tap.offer(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventName;

    fn event(rid: i64, uid: i64) -> Event {
        Event {
            pid: 1,
            name: EventName::MemberJoined,
            rid,
            uid: Some(uid),
            time_ms: 0,
            data: "{}".into(),
            endpoint: String::new(),
        }
    }

    #[test]
    fn a_tap_gets_its_rooms_events_until_removed() {
        let taps = Taps::default();
        assert!(!taps.has(1, 7));
        let (a, b) = (taps.add(1, 7), taps.add(1, 7));
        assert!(taps.has(1, 7) && !taps.has(2, 7) && !taps.has(1, 8));
        taps.offer(1, &[event(7, 1), event(8, 2), event(7, 3)]);
        taps.offer(2, &[event(7, 4)]);
        let uids = |tap: &Tap| tap.drain().0.iter().map(|e| e.uid.unwrap()).collect::<Vec<_>>();
        assert_eq!(uids(&a), vec![1, 3]);
        assert_eq!(uids(&b), vec![1, 3]);
        assert!(a.drain().0.is_empty());
        taps.remove(1, 7, &a);
        taps.offer(1, &[event(7, 5)]);
        assert_eq!((uids(&a), uids(&b)), (vec![], vec![5]));
        taps.remove(1, 7, &b);
        assert!(!taps.has(1, 7));
    }

    #[test]
    fn a_full_tap_counts_what_it_lost() {
        let taps = Taps::default();
        let tap = taps.add(1, 7);
        let many: Vec<Event> = (0..TAP_MAX as i64 + 3).map(|u| event(7, u)).collect();
        taps.offer(1, &many);
        let (events, lost) = tap.drain();
        assert_eq!((events.len(), lost), (TAP_MAX, 3));
    }
}
