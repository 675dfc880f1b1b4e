//! Room events: what the server pushes to a listening client as oneway
//! `pushevent` quests, typed, and delivered to a callback
//! ([`ClientOptions::on_room_event`](crate::ClientOptions::on_room_event))
//! and to any number of streams
//! ([`RtmServerClient::room_events`](crate::RtmServerClient::room_events)).
//!
//! Both ride on the push-handler table: the client installs the handler for
//! `pushevent` at connect, chaining to a raw handler registered with
//! [`ClientOptions::on_push`](crate::ClientOptions::on_push) if there is one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rtm_protocol::methods::{Method, Mode, PushEvent, Role};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::broadcast;
use tracing::warn;

use crate::push::{PushHandler, PushQuest};

/// A room event callback. It runs on the connection task: it must not block.
pub(crate) type RoomEventHandler = Arc<dyn Fn(RoomEvent) + Send + Sync>;

/// Events a stream may fall behind by before it loses the oldest.
pub(crate) const DEFAULT_BUFFER: usize = 1024;

/// An event in a room, pushed by the server to a client that listens to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomEvent {
    /// Project id.
    pub pid: i64,
    /// Event name, e.g. [`RoomEvent::MEMBER_JOINED`].
    pub name: String,
    /// The user the event is about; 0 for room-wide events.
    pub uid: i64,
    /// When it happened, Unix milliseconds, to the second (`pushevent`
    /// carries Unix seconds, as RTM's SDKs read it).
    pub time_ms: i64,
    /// The client's address for `login`/`logout`; empty for room events.
    pub endpoint: String,
    /// The room, from `data`'s `rid`; 0 if absent.
    pub rid: i64,
    /// The event's details, a JSON object such as
    /// `{"rid":5,"role":"attendee","mode":1}`. If the server sent text that
    /// is not JSON, that text as a JSON string.
    pub data: Value,
}

impl RoomEvent {
    /// A scheduled room was created.
    pub const ROOM_CREATED: &'static str = "room_created";
    /// A room's window or policies changed.
    pub const ROOM_UPDATED: &'static str = "room_updated";
    /// A room was released; `data` has `begin_time`, `end_time` (Unix
    /// seconds) and `reason` (`expired`, `max_duration`, `threshold`,
    /// `idle` or `deleted`).
    pub const ROOM_RELEASED: &'static str = "room_released";
    /// A user joined a room; `data` has `role` and `mode`.
    pub const MEMBER_JOINED: &'static str = "member_joined";
    /// A user left a room.
    pub const MEMBER_LEFT: &'static str = "member_left";
    /// A member's role or mode changed; `data` has `role` and `mode`.
    pub const MEMBER_UPDATED: &'static str = "member_updated";
    /// A user was banned.
    pub const BAN_ADDED: &'static str = "ban_added";
    /// A ban was lifted.
    pub const BAN_REMOVED: &'static str = "ban_removed";
    /// A ban ran out.
    pub const BAN_EXPIRED: &'static str = "ban_expired";
    /// A room's info changed.
    pub const INFO_CHANGED: &'static str = "info_changed";

    /// The member's role, for member events.
    pub fn role(&self) -> Option<Role> {
        self.data.get("role").and_then(Value::as_str).and_then(Role::from_name)
    }

    /// The member's send/receive mode, for member events.
    pub fn mode(&self) -> Option<Mode> {
        self.data.get("mode").and_then(Value::as_i64).and_then(Mode::from_code)
    }

    /// Reads `data` as a type of your own.
    ///
    /// ```
    /// # let event = rtm_sdk::RoomEvent::from(rtm_sdk::protocol::methods::PushEvent {
    /// #     event: "room_released".into(),
    /// #     data: r#"{"rid":5,"begin_time":1,"end_time":2,"reason":"idle"}"#.into(),
    /// #     ..Default::default()
    /// # });
    /// #[derive(serde::Deserialize)]
    /// struct Released {
    ///     end_time: i64,
    ///     reason: String,
    /// }
    /// let released: Released = event.data_as()?;
    /// assert_eq!((released.end_time, released.reason.as_str()), (2, "idle"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }
}

impl From<PushEvent> for RoomEvent {
    fn from(push: PushEvent) -> Self {
        let data = serde_json::from_str(&push.data).unwrap_or(Value::String(push.data));
        let rid = data.get("rid").and_then(Value::as_i64).unwrap_or(0);
        Self {
            pid: push.pid,
            name: push.event,
            uid: push.uid,
            time_ms: push.time.saturating_mul(1000),
            endpoint: push.endpoint,
            rid,
            data,
        }
    }
}

/// A stream fell behind: this many events were dropped from its buffer
/// before it read them. The stream goes on with the oldest event it still
/// has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged {
    /// How many events this stream missed.
    pub missed: u64,
}

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the room event stream fell behind and missed {} events", self.missed)
    }
}

impl std::error::Error for Lagged {}

/// Room events as they arrive, from
/// [`RtmServerClient::room_events`](crate::RtmServerClient::room_events).
///
/// Each stream has its own bounded buffer
/// ([`ClientOptions::room_event_buffer`](crate::ClientOptions::room_event_buffer),
/// 1024 by default). A stream that falls further behind loses its oldest
/// events and reports how many as a [`Lagged`] item, so a slow consumer
/// costs neither unbounded memory nor silent loss, and never slows the
/// connection or other streams down.
#[derive(Debug)]
pub struct RoomEventStream {
    receiver: broadcast::Receiver<RoomEvent>,
}

impl RoomEventStream {
    pub(crate) fn new(receiver: broadcast::Receiver<RoomEvent>) -> Self {
        Self { receiver }
    }

    /// The next event, `Err(Lagged)` if events were lost because this
    /// stream fell behind, or `None` once the client is closed (or every
    /// handle dropped) and the buffered events are read.
    ///
    /// Cancel-safe: using it in `tokio::select!` loses no event.
    pub async fn next(&mut self) -> Option<Result<RoomEvent, Lagged>> {
        match self.receiver.recv().await {
            Ok(event) => Some(Ok(event)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Err(Lagged { missed })),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// Routes `pushevent` pushes to `callback` and to streams holding up to
/// `buffer` events, chaining to the raw `pushevent` handler in
/// `push_handlers` if there is one, and returns what streams subscribe to.
/// The strong sender lives in the push handler, owned by the connection
/// task, so streams end when it does.
pub(crate) fn install(
    push_handlers: &mut HashMap<String, PushHandler>,
    callback: Option<RoomEventHandler>,
    buffer: usize,
) -> broadcast::WeakSender<RoomEvent> {
    let (sender, _) = broadcast::channel(buffer.max(1));
    let subscribe = sender.downgrade();
    let raw = push_handlers.remove(PushEvent::NAME);
    let handler = move |quest: PushQuest| {
        let to_stream = sender.receiver_count() > 0;
        // Decoding is skipped when nobody wants the typed event.
        let decoded = (to_stream || callback.is_some()).then(|| quest.decode::<PushEvent>());
        if let Some(raw) = &raw {
            raw(quest);
        }
        let event = match decoded {
            None => return,
            Some(Ok(push)) => RoomEvent::from(push),
            Some(Err(e)) => {
                warn!(error = %e, "dropping a pushevent the SDK cannot read");
                return;
            }
        };
        match &callback {
            Some(callback) => {
                if to_stream {
                    let _ = sender.send(event.clone());
                }
                callback(event);
            }
            None => {
                let _ = sender.send(event);
            }
        }
    };
    push_handlers.insert(PushEvent::NAME.to_owned(), Arc::new(handler));
    subscribe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(data: &str) -> PushEvent {
        PushEvent {
            pid: 7,
            event: RoomEvent::MEMBER_UPDATED.into(),
            uid: 9,
            time: 1_700_000_000,
            endpoint: "rtm-server".into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_read_the_room_role_and_mode_from_their_data() {
        let event = RoomEvent::from(push(r#"{"rid":5,"role":"consumer","mode":3}"#));
        assert_eq!((event.pid, event.uid, event.time_ms, event.rid), (7, 9, 1_700_000_000_000, 5));
        assert_eq!((event.name.as_str(), event.endpoint.as_str()), ("member_updated", "rtm-server"));
        assert_eq!((event.role(), event.mode()), (Some(Role::Consumer), Some(Mode::ReceiveOnly)));
    }

    #[test]
    fn data_without_a_room_or_not_json_is_kept() {
        let event = RoomEvent::from(push(r#"{"reason":"idle"}"#));
        assert_eq!((event.rid, event.role()), (0, None));
        assert_eq!(event.data["reason"], "idle");
        let event = RoomEvent::from(push("not json"));
        assert_eq!((event.rid, &event.data), (0, &Value::String("not json".into())));
    }
}
