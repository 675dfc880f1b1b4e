//! Connection lifecycle events, delivered to the callback set with
//! [`ClientOptions::on_event`](crate::ClientOptions::on_event).

use std::sync::Arc;
use std::time::Duration;

/// Something that happened to the client's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A connection was established.
    Connected {
        /// The server's address.
        endpoint: String,
        /// Whether this replaces a connection that dropped.
        reconnect: bool,
    },
    /// The connection dropped; calls in flight failed with a connection error.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// A reconnection attempt failed; the next one follows after `delay`.
    Reconnecting {
        /// How many attempts have failed since the connection dropped.
        attempt: u32,
        /// The wait before the next attempt.
        delay: Duration,
    },
    /// After a reconnect, the server refused or did not answer the
    /// `setlisten` that restores what the client listens to. Until a
    /// [`set_listen`](crate::RtmServerClient::set_listen) call or the next
    /// reconnect, this connection may receive fewer room events than
    /// [`listening`](crate::RtmServerClient::listening) says.
    ListenRestoreFailed {
        /// Why.
        reason: String,
    },
    /// The client was closed (explicitly, or because every handle was dropped).
    Closed,
}

/// A connection event callback. It runs on the connection task: it must not block.
pub(crate) type EventHandler = Arc<dyn Fn(&ConnectionEvent) + Send + Sync>;

/// Hands `event` to `handler`, if there is one.
pub(crate) fn emit(handler: Option<&EventHandler>, event: ConnectionEvent) {
    if let Some(handler) = handler {
        handler(&event);
    }
}
