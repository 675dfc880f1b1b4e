//! A session's outbox: the bounded queue of pushes (quests the server sends
//! unasked) that its pump writes out between answers.
//!
//! Whoever pushes to a session (the room events hub today; room messages
//! and kickouts next) holds an [`OutboxSender`]. The bound is counted, not
//! preallocated, so an idle session costs a few words; and it can be raised
//! for a one-off batch (the events held at start-up). A push that finds the
//! outbox full marks it overflowed: the session is closed rather than
//! buffered without bound or silently skipped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use rtm_protocol::Encoding;
use tokio::sync::{mpsc, Notify};

use crate::model::{Event, RoomMessage};

/// Something to push to a session.
#[derive(Debug, Clone)]
pub(crate) enum Push {
    /// A room event for a listening backend, in the encoding it listens with.
    Event { event: Arc<Event>, encoding: Encoding },
    /// A room message (twoway `pushroommsg`); for a client, chat is the
    /// translation map, for a backend plain text.
    RoomMessage { message: Arc<Delivery>, encoding: Encoding, to_client: bool },
    /// The client is no longer in room `rid` (oneway `kickoutroom`).
    KickoutRoom { rid: i64, encoding: Encoding },
}

impl Push {
    /// What the push holds, roughly, in bytes (its variable parts and a
    /// frame's worth of the rest), for the outbox's byte bound.
    fn size(&self) -> usize {
        const FRAME: usize = 64;
        FRAME
            + match self {
                Self::Event { event, .. } => event.data.len() + event.endpoint.len(),
                Self::RoomMessage { message, .. } => message.body.len() + message.attrs.len(),
                Self::KickoutRoom { .. } => 0,
            }
    }
}

/// A room message on its way to its receivers. Its `pushroommsg` frame is
/// encoded once per encoding and audience (client or backend), by the
/// first session that writes it, and copied by the others.
pub(crate) struct Delivery {
    message: RoomMessage,
    /// msgpack/JSON × backend/client.
    frames: [OnceLock<Bytes>; 4],
}

impl Delivery {
    pub(crate) fn new(message: RoomMessage) -> Self {
        Self { message, frames: Default::default() }
    }

    /// The frame for `encoding` and audience, encoded by `encode` the first time.
    pub(crate) fn frame(&self, encoding: Encoding, to_client: bool, encode: impl FnOnce() -> Bytes) -> &Bytes {
        let at = usize::from(encoding == Encoding::Json) * 2 + usize::from(to_client);
        self.frames[at].get_or_init(encode)
    }
}

impl std::ops::Deref for Delivery {
    type Target = RoomMessage;

    fn deref(&self) -> &RoomMessage {
        &self.message
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.message.fmt(f)
    }
}

/// What happened to an offered push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    Queued,
    /// The outbox was full: the session is being closed.
    Overflowed,
    /// The session has ended.
    Closed,
}

/// What the pump takes from the outbox: a push, or an order to close.
/// Orders travel in the same channel as pushes, so the pump waits on one
/// thing per loop and pays nothing for them until one comes.
#[derive(Debug)]
pub(crate) enum Next {
    Push(Push),
    /// A push found the outbox full: close the session as too slow.
    Overflowed,
    /// Send `kickout` and close.
    Kick,
}

struct Shared {
    queued: AtomicUsize,
    limit: AtomicUsize,
    /// Bytes the queued pushes hold (approximately), and their bound.
    bytes: AtomicUsize,
    max_bytes: usize,
    overflowed: AtomicBool,
    /// Wakes a pump blocked writing to its peer when the outbox overflows.
    overflow_wake: Notify,
    /// Set once something subscribed this session to pushes that need it
    /// kept alive by server pings, with the encoding of those pings.
    keepalive: OnceLock<Encoding>,
}

/// The pushing half; cheap to clone.
#[derive(Clone)]
pub(crate) struct OutboxSender {
    tx: mpsc::UnboundedSender<Next>,
    shared: Arc<Shared>,
}

/// The receiving half, owned by the session's pump.
pub(crate) struct Outbox {
    rx: mpsc::UnboundedReceiver<Next>,
    shared: Arc<Shared>,
}

/// A new outbox holding at most `limit` pushes and `max_bytes` of them
/// (a push larger than `max_bytes` alone still overflows).
pub(crate) fn outbox(limit: usize, max_bytes: usize) -> (OutboxSender, Outbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        limit: AtomicUsize::new(limit.max(1)),
        bytes: AtomicUsize::new(0),
        max_bytes: max_bytes.max(1),
        overflowed: AtomicBool::new(false),
        overflow_wake: Notify::new(),
        keepalive: OnceLock::new(),
    });
    (OutboxSender { tx, shared: shared.clone() }, Outbox { rx, shared })
}

impl OutboxSender {
    /// Queues a push, or marks the outbox overflowed if it is full.
    pub(crate) fn offer(&self, push: Push) -> Offered {
        let shared = &self.shared;
        if shared.overflowed.load(Ordering::Relaxed) {
            return Offered::Overflowed;
        }
        let size = push.size();
        let over_count = shared.queued.fetch_add(1, Ordering::AcqRel) >= shared.limit.load(Ordering::Relaxed);
        let over_bytes = shared.bytes.fetch_add(size, Ordering::AcqRel).saturating_add(size) > shared.max_bytes;
        if over_count || over_bytes {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            shared.bytes.fetch_sub(size, Ordering::AcqRel);
            // The first to overflow tells the pump; the order is not counted.
            if !shared.overflowed.swap(true, Ordering::AcqRel) {
                let _ = self.tx.send(Next::Overflowed);
                shared.overflow_wake.notify_one();
            }
            return Offered::Overflowed;
        }
        match self.tx.send(Next::Push(push)) {
            Ok(()) => Offered::Queued,
            Err(_) => {
                shared.queued.fetch_sub(1, Ordering::AcqRel);
                shared.bytes.fetch_sub(size, Ordering::AcqRel);
                Offered::Closed
            }
        }
    }

    /// Asks the pump to send `kickout` and close the session.
    pub(crate) fn kick(&self) {
        let _ = self.tx.send(Next::Kick);
    }

    /// Makes room for `extra` more pushes on top of the limit, for good.
    pub(crate) fn raise_limit(&self, extra: usize) {
        self.shared.limit.fetch_add(extra, Ordering::Relaxed);
    }

    /// Asks the pump to ping its peer while the session is idle (the first
    /// caller's encoding wins).
    pub(crate) fn keep_alive(&self, encoding: Encoding) {
        let _ = self.shared.keepalive.set(encoding);
    }

    /// Whether the outbox overflowed.
    pub(crate) fn is_overflowed(&self) -> bool {
        self.shared.overflowed.load(Ordering::Relaxed)
    }
}

impl Outbox {
    /// The next push or order, waiting for one. Never `None` while the
    /// session holds its own sender.
    pub(crate) async fn next(&mut self) -> Option<Next> {
        let next = self.rx.recv().await;
        self.taken(&next);
        next
    }

    /// A queued push or order, without waiting.
    pub(crate) fn try_next(&mut self) -> Option<Next> {
        let next = self.rx.try_recv().ok();
        self.taken(&next);
        next
    }

    fn taken(&self, next: &Option<Next>) {
        if let Some(Next::Push(push)) = next {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            self.shared.bytes.fetch_sub(push.size(), Ordering::AcqRel);
        }
    }

    /// Resolves once the outbox overflowed (for a pump blocked writing; it
    /// registers nothing until polled).
    pub(crate) async fn overflowed(&self) {
        if !self.shared.overflowed.load(Ordering::Acquire) {
            self.shared.overflow_wake.notified().await;
        }
    }

    /// The encoding of keep-alive pings, once the session needs them.
    pub(crate) fn keepalive(&self) -> Option<Encoding> {
        self.shared.keepalive.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_encoded_once_per_encoding_and_audience() {
        use crate::model::{Body, RoomMessage};
        let message = RoomMessage {
            pid: 1,
            rid: 2,
            from: 3,
            mid: 4,
            mtype: 30,
            body: Body::Text("hi".into()),
            attrs: String::new(),
            mtime: 5,
        };
        let delivery = Delivery::new(message);
        let encodes = std::cell::Cell::new(0);
        let encode = |tag: &'static [u8]| {
            encodes.set(encodes.get() + 1);
            Bytes::from_static(tag)
        };
        assert_eq!(delivery.frame(Encoding::MsgPack, true, || encode(b"client")), &b"client"[..]);
        assert_eq!(delivery.frame(Encoding::MsgPack, true, || encode(b"again")), &b"client"[..]);
        assert_eq!(delivery.frame(Encoding::MsgPack, false, || encode(b"backend")), &b"backend"[..]);
        assert_eq!(delivery.frame(Encoding::Json, true, || encode(b"json")), &b"json"[..]);
        assert_eq!(encodes.get(), 3);
        assert_eq!(delivery.rid, 2, "reads as the message");
    }
    use crate::model::EventName;

    fn push() -> Push {
        let event = Event {
            pid: 1,
            name: EventName::RoomCreated,
            rid: 1,
            uid: None,
            time_ms: 0,
            data: "{}".into(),
            endpoint: String::new(),
        };
        Push::Event { event: Arc::new(event), encoding: Encoding::MsgPack }
    }

    #[tokio::test]
    async fn bounded_by_count_and_overflow_is_sticky() {
        let (tx, mut rx) = outbox(2, usize::MAX);
        assert_eq!(tx.offer(push()), Offered::Queued);
        assert_eq!(tx.offer(push()), Offered::Queued);
        assert!(matches!(rx.next().await, Some(Next::Push(_))));
        assert_eq!(tx.offer(push()), Offered::Queued, "taking one makes room for one");
        assert_eq!(tx.offer(push()), Offered::Overflowed);
        assert!(tx.is_overflowed());
        assert_eq!(tx.offer(push()), Offered::Overflowed, "an overflowed session stays closed to pushes");
        assert!(matches!(rx.try_next(), Some(Next::Push(_))));
        assert!(matches!(rx.try_next(), Some(Next::Push(_))));
        assert!(matches!(rx.try_next(), Some(Next::Overflowed)), "the pump is told once, after the pushes before");
        assert!(rx.try_next().is_none());
        tx.kick();
        assert!(matches!(rx.try_next(), Some(Next::Kick)));
    }

    #[test]
    fn bytes_bound_the_outbox_too() {
        let (tx, mut rx) = outbox(100, 200);
        assert_eq!(tx.offer(push()), Offered::Queued, "66 bytes");
        assert_eq!(tx.offer(push()), Offered::Queued, "132 bytes");
        assert!(matches!(rx.try_next(), Some(Next::Push(_))), "back to 66");
        assert_eq!(tx.offer(push()), Offered::Queued, "132 again");
        assert_eq!(tx.offer(push()), Offered::Queued, "198");
        assert_eq!(tx.offer(push()), Offered::Overflowed, "264 would be over 200");
    }

    #[test]
    fn the_limit_can_be_raised_and_a_closed_session_refuses() {
        let (tx, rx) = outbox(1, usize::MAX);
        tx.raise_limit(1);
        assert_eq!(tx.offer(push()), Offered::Queued);
        assert_eq!(tx.offer(push()), Offered::Queued);
        drop(rx);
        let (tx, rx) = outbox(1, usize::MAX);
        drop(rx);
        assert_eq!(tx.offer(push()), Offered::Closed);
        assert!(!tx.is_overflowed());
    }
}
