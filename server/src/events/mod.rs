//! Room events and the connections that listen to them.
//!
//! A backend session subscribes with `addlisten` / `removelisten` /
//! `setlisten` and becomes a [`Listener`] of its project. Every state change
//! is described as events (`describe.rs`) and offered to the
//! project's listeners whose [`Filter`] matches, as pushes into the
//! session's bounded outbox (`session/outbox.rs`), which its pump writes
//! out as `pushevent` quests.
//!
//! Order: events of one room are described and queued under that room's
//! ordering lock, and each listener's queue is first-in first-out, so a
//! listener sees one room's events in the order they happened.
//!
//! Slow listeners: a listener whose outbox is full is disconnected (its
//! connection closes with a warning and `rtm_listeners_dropped_total` grows)
//! rather than skipped silently. Delivery is at most once: events that
//! happen while a backend is not listening are not kept for it, except for
//! the start-up hold below.
//!
//! Start-up hold: rooms whose deadline passed while the server was down are
//! released right after start-up, before any backend could listen. For
//! `hold` after start-up, events the server decides on by itself (releases
//! and extensions at deadlines, ban expiries) in a project with no listener
//! are kept (up to [`HELD_MAX`]) and handed to each listener of that
//! project when it first subscribes. Changes made through the API are not
//! held: the backend that made them has their answers.

mod describe;
mod filter;
mod tap;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rtm_protocol::Encoding;

pub(crate) use describe::{ban_expired, describe};
pub(crate) use filter::Filter;
pub(crate) use tap::Tap;
use tap::Taps;

use crate::model::{Event, EventName};

use crate::outbox::{Offered, OutboxSender, Push};

/// Events kept at most during the start-up hold.
pub(crate) const HELD_MAX: usize = 100_000;
/// Ordering locks; rooms share them by hash.
const ORDER_STRIPES: usize = 256;

/// A subscribed session.
pub(crate) struct Listener {
    /// The session's id.
    session: u64,
    pid: i64,
    filter: RwLock<Filter>,
    outbox: OutboxSender,
    /// The encoding of its pushes: that of its first listen quest.
    encoding: Encoding,
}

impl Listener {
    fn matches(&self, event: &Event) -> bool {
        self.filter.read().unwrap_or_else(|e| e.into_inner()).matches(event)
    }

    /// Queues an event; a full outbox drops the listener (once).
    fn offer(&self, event: &Arc<Event>, hub: &Hub) {
        let was_overflowed = self.outbox.is_overflowed();
        match self.outbox.offer(Push::Event { event: event.clone(), encoding: self.encoding }) {
            Offered::Queued => {
                hub.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Offered::Overflowed if !was_overflowed => {
                hub.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    pid = self.pid,
                    session = self.session,
                    "listener too slow: its outbox is full; disconnecting it"
                );
            }
            // Already being closed, or closing: it unsubscribes on its way out.
            Offered::Overflowed | Offered::Closed => {}
        }
    }
}

/// Every listener, by project and by session.
#[derive(Default)]
struct Listeners {
    by_project: HashMap<i64, Vec<Arc<Listener>>>,
    by_session: HashMap<u64, Arc<Listener>>,
}

/// Counters for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HubStats {
    pub(crate) listeners: usize,
    pub(crate) published: u64,
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
}

/// Every listener, by project.
pub(crate) struct Hub {
    listeners: RwLock<Listeners>,
    /// Listeners of every project: with none, publishing costs one load.
    active: AtomicUsize,
    order: Box<[Mutex<()>]>,
    /// End of the start-up hold, Unix milliseconds (0 = over).
    hold_until_ms: AtomicI64,
    holding: AtomicBool,
    held: Mutex<Vec<Arc<Event>>>,
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    /// Rooms recorded with their events.
    taps: Taps,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            listeners: RwLock::default(),
            active: AtomicUsize::new(0),
            order: (0..ORDER_STRIPES).map(|_| Mutex::new(())).collect(),
            hold_until_ms: AtomicI64::new(0),
            holding: AtomicBool::new(false),
            held: Mutex::default(),
            published: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            taps: Taps::default(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// Starts the start-up hold (from now).
    pub(crate) fn configure(&self, hold_ms: i64, now_ms: i64) {
        if hold_ms > 0 {
            self.hold_until_ms.store(now_ms.saturating_add(hold_ms), Ordering::Relaxed);
            self.holding.store(true, Ordering::Release);
        }
    }

    /// Whether the start-up hold is on at `now_ms`; ends it once passed.
    fn holding(&self, now_ms: i64) -> bool {
        if !self.holding.load(Ordering::Acquire) {
            return false;
        }
        if now_ms < self.hold_until_ms.load(Ordering::Relaxed) {
            return true;
        }
        self.holding.store(false, Ordering::Release);
        lock(&self.held).clear();
        false
    }

    /// Whether a change to room `rid` of project `pid` must be described as
    /// events: a listener of the project may want it, or the server decided
    /// the change (`decided_at` is then its time) and the start-up hold is
    /// on. Changes made through the API pass `None` and read no clock here:
    /// with no listener this is one atomic load.
    pub(crate) fn wants(&self, pid: i64, rid: i64, decided_at: Option<i64>) -> bool {
        if decided_at.is_some_and(|now_ms| self.holding(now_ms)) || self.taps.has(pid, rid) {
            return true;
        }
        if self.active.load(Ordering::Acquire) == 0 {
            return false;
        }
        let listeners = self.listeners.read().unwrap_or_else(|e| e.into_inner());
        listeners.by_project.get(&pid).is_some_and(|project| {
            project.iter().any(|l| l.filter.read().unwrap_or_else(|e| e.into_inner()).may_match_room(rid))
        })
    }

    /// The ordering lock of a room: held while a change to it is applied and
    /// its events are queued.
    pub(crate) fn order(&self, pid: i64, rid: i64) -> MutexGuard<'_, ()> {
        let hash = (pid as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (rid as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        lock(&self.order[(hash >> 32) as usize % ORDER_STRIPES])
    }

    /// Offers events of project `pid` to its listeners (or holds them).
    pub(crate) fn publish(&self, pid: i64, events: Vec<Event>, now_ms: i64) {
        if events.is_empty() {
            return;
        }
        self.published.fetch_add(events.len() as u64, Ordering::Relaxed);
        self.taps.offer(pid, &events);
        let listeners = self.listeners.read().unwrap_or_else(|e| e.into_inner());
        match listeners.by_project.get(&pid) {
            Some(project) => {
                for event in events {
                    let event = Arc::new(event);
                    for listener in project.iter().filter(|l| l.matches(&event)) {
                        listener.offer(&event, self);
                    }
                }
            }
            None if self.holding(now_ms) => {
                let mut held = lock(&self.held);
                let room = HELD_MAX.saturating_sub(held.len());
                if room < events.len() {
                    tracing::warn!(lost = events.len() - room, "start-up event hold is full; events are not kept");
                }
                held.extend(events.into_iter().take(room).map(Arc::new));
            }
            None => {}
        }
    }

    /// Announces that a user logged in or out (`login`/`logout`, about no
    /// room), from the client's `endpoint`.
    pub(crate) fn user_presence(&self, name: EventName, pid: i64, uid: i64, endpoint: &str, now_ms: i64) {
        if !self.wants(pid, 0, None) {
            return;
        }
        let event =
            Event { pid, name, rid: 0, uid: Some(uid), time_ms: now_ms, data: "{}".into(), endpoint: endpoint.into() };
        self.publish(pid, vec![event], now_ms);
    }

    /// Offers a room message to the project's listeners of room `rid`
    /// (`setlisten {room: true}` or the room in `rids`), in their encoding.
    /// Returns how many listeners it was queued for.
    pub(crate) fn offer_room_message(&self, message: &Arc<crate::outbox::Delivery>) -> u64 {
        if self.active.load(Ordering::Acquire) == 0 {
            return 0;
        }
        let listeners = self.listeners.read().unwrap_or_else(|e| e.into_inner());
        let Some(project) = listeners.by_project.get(&message.pid) else { return 0 };
        let mut queued = 0;
        for listener in project {
            let wants = {
                let filter = listener.filter.read().unwrap_or_else(|e| e.into_inner());
                filter.all_rooms || filter.rids.contains(&message.rid)
            };
            if wants {
                let push =
                    Push::RoomMessage { message: message.clone(), encoding: listener.encoding, to_client: false };
                queued += u64::from(listener.outbox.offer(push) == Offered::Queued);
            }
        }
        queued
    }

    /// Changes what a session listens to, subscribing it first if needed
    /// (then held start-up events that match are queued for it first).
    /// `change` edits the filter and says whether it accepts the result; a
    /// session whose first change is refused is not subscribed.
    pub(crate) fn listen(
        &self,
        session: u64,
        outbox: &OutboxSender,
        pid: i64,
        encoding: Encoding,
        now_ms: i64,
        change: impl FnOnce(&mut Filter) -> bool,
    ) {
        if let Some(listener) = self.listeners.read().unwrap_or_else(|e| e.into_inner()).by_session.get(&session) {
            change(&mut listener.filter.write().unwrap_or_else(|e| e.into_inner()));
            return;
        }
        let mut filter = Filter::default();
        if !change(&mut filter) {
            return;
        }
        // Under the write lock, so no live event of the project overtakes a held one.
        let mut listeners = self.listeners.write().unwrap_or_else(|e| e.into_inner());
        let held: Vec<Arc<Event>> = match self.holding(now_ms) {
            true => lock(&self.held).iter().filter(|e| e.pid == pid && filter.matches(e)).cloned().collect(),
            false => Vec::new(),
        };
        // Room for the held events on top of the usual bound.
        outbox.raise_limit(held.len());
        outbox.keep_alive(encoding);
        let listener =
            Arc::new(Listener { session, pid, filter: RwLock::new(filter), outbox: outbox.clone(), encoding });
        for event in &held {
            listener.offer(event, self);
        }
        listeners.by_project.entry(pid).or_default().push(listener.clone());
        listeners.by_session.insert(session, listener);
        self.active.fetch_add(1, Ordering::Release);
    }

    /// Ends a session's subscription, if it has one.
    pub(crate) fn unsubscribe(&self, session: u64) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut listeners = self.listeners.write().unwrap_or_else(|e| e.into_inner());
        let Some(listener) = listeners.by_session.remove(&session) else { return };
        if let Some(project) = listeners.by_project.get_mut(&listener.pid) {
            project.retain(|l| !Arc::ptr_eq(l, &listener));
            if project.is_empty() {
                listeners.by_project.remove(&listener.pid);
            }
        }
        self.active.fetch_sub(1, Ordering::Release);
    }

    /// A copy of every event of room `rid` of project `pid` from now on,
    /// until [`Hub::untap`].
    pub(crate) fn tap(&self, pid: i64, rid: i64) -> Arc<Tap> {
        self.taps.add(pid, rid)
    }

    /// Ends a [`Hub::tap`].
    pub(crate) fn untap(&self, pid: i64, rid: i64, tap: &Arc<Tap>) {
        self.taps.remove(pid, rid, tap);
    }

    pub(crate) fn stats(&self) -> HubStats {
        HubStats {
            listeners: self.active.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventName;
    use crate::outbox::{outbox, Next, Outbox};

    /// Subscribes session 1 with an outbox of `limit`.
    fn subscribe(hub: &Hub, limit: usize, now_ms: i64, change: impl FnOnce(&mut Filter)) -> (OutboxSender, Outbox) {
        let (tx, rx) = outbox(limit, usize::MAX);
        hub.listen(1, &tx, 1, Encoding::MsgPack, now_ms, |filter| {
            change(filter);
            true
        });
        (tx, rx)
    }

    fn name(next: Option<Next>) -> Option<EventName> {
        match next? {
            Next::Push(Push::Event { event, .. }) => Some(event.name),
            _ => None,
        }
    }

    fn event(rid: i64, name: EventName) -> Event {
        Event { pid: 1, name, rid, uid: None, time_ms: 0, data: "{}".into(), endpoint: String::new() }
    }

    fn all(filter: &mut Filter) {
        filter.all_events = true;
    }

    #[tokio::test]
    async fn listeners_get_matching_events_in_order() {
        let hub = Hub::default();
        let (_tx, mut rx) = subscribe(&hub, 10, 0, all);
        assert!(hub.wants(1, 5, None));
        assert!(!hub.wants(2, 5, None), "other projects are not described");
        hub.publish(1, vec![event(5, EventName::RoomCreated), event(5, EventName::RoomReleased)], 0);
        hub.publish(2, vec![event(5, EventName::RoomCreated)], 0);
        assert_eq!(name(rx.next().await), Some(EventName::RoomCreated));
        assert_eq!(name(rx.next().await), Some(EventName::RoomReleased));
        assert!(rx.try_next().is_none());
        hub.unsubscribe(1);
        assert_eq!(hub.stats().listeners, 0);
        assert!(!hub.wants(1, 5, None));
    }

    #[test]
    fn a_full_queue_drops_the_listener() {
        let hub = Hub::default();
        let (tx, _rx) = subscribe(&hub, 2, 0, all);
        hub.publish(1, vec![event(1, EventName::RoomCreated); 2], 0);
        assert!(!tx.is_overflowed());
        hub.publish(1, vec![event(1, EventName::RoomCreated)], 0);
        assert!(tx.is_overflowed());
        hub.publish(1, vec![event(1, EventName::RoomCreated)], 0);
        assert_eq!(hub.stats().dropped, 1);
    }

    #[test]
    fn held_events_reach_listeners_that_subscribe_during_the_hold() {
        let hub = Hub::default();
        hub.configure(1_000, 0);
        assert!(hub.wants(1, 5, Some(10)), "during the hold the server's own changes are described");
        assert!(!hub.wants(1, 5, None), "changes made through the API are not held");
        hub.publish(1, vec![event(1, EventName::RoomReleased), event(2, EventName::RoomCreated)], 10);
        let (_tx, mut rx) = subscribe(&hub, 1, 20, |f| {
            f.all_events = true;
            f.rids.insert(1);
        });
        assert_eq!(name(rx.try_next()), Some(EventName::RoomReleased));
        assert!(rx.try_next().is_none(), "room 2 is not listened to");
        assert!(!hub.wants(2, 5, Some(1_000)), "the hold ends");
    }
}
