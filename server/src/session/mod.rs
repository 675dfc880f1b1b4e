//! Sessions: one per connection, whatever the gate and the transport.
//!
//! A [`Session`] is who is on the other end (what it authenticated as) and
//! its outbox of pushes (`outbox.rs`). The [`pump`](pump::serve) runs the connection:
//! it reads frames from any byte stream, hands each quest to its gate
//! (`gate/`), writes answers in batches once the changes they acknowledge
//! are durable, and writes the outbox's pushes between them.

pub(crate) mod encrypted;
pub(crate) mod pump;
pub(crate) mod websocket;

/// The byte stream a session runs on: TCP, TLS over TCP, or WebSocket.
pub(crate) trait Transport: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {
    /// Says why the server is about to close: a WebSocket sends it in its
    /// close frame (RFC 6455 codes, and 4000–4999 for ours); TCP cannot.
    fn closing(&mut self, _why: CloseCode) {}

    /// Why the transport itself ended the session (its read failed on
    /// purpose, e.g. a WebSocket peer that answered no ping), for the close
    /// frame; `None` when it did not.
    fn ended_by_transport(&self) -> Option<CloseCode> {
        None
    }

    /// The `transport` label of `rtm_connections_open`.
    fn kind(&self) -> &'static str {
        "tcp"
    }
}

impl Transport for tokio::net::TcpStream {}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Transport for tokio_rustls::server::TlsStream<S> {
    fn kind(&self) -> &'static str {
        "tls"
    }
}

#[cfg(test)]
impl Transport for tokio::io::DuplexStream {}

/// Why the server closes a session, as a WebSocket close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CloseCode {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

impl CloseCode {
    pub(crate) const NORMAL: Self = Self { code: 1000, reason: "bye" };
    pub(crate) const GOING_AWAY: Self = Self { code: 1001, reason: "server shutting down" };
    pub(crate) const PROTOCOL_ERROR: Self = Self { code: 1002, reason: "malformed FPNN frame" };
    pub(crate) const INTERNAL: Self = Self { code: 1011, reason: "storage unavailable" };
    pub(crate) const IDLE: Self = Self { code: 4000, reason: "idle timeout" };
    pub(crate) const NO_LOGIN: Self = Self { code: 4001, reason: "no auth within the auth timeout" };
    pub(crate) const KICKED: Self = Self { code: 4002, reason: "kicked out" };
    pub(crate) const TOO_SLOW: Self = Self { code: 4003, reason: "too slow to read" };
    pub(crate) const NO_PONG: Self = Self { code: 4004, reason: "no answer to pings" };
}

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use rtm_protocol::Quest;

use crate::error::RtmError;
use crate::events::Hub;
use crate::outbox::OutboxSender;
use crate::presence::ClientHandle;

/// An accepted connection, and what its session needs (once upgraded, for
/// a WebSocket one; once its first packet is read, on a gate with `*key`).
pub(crate) struct Accepted<G> {
    pub(crate) gate: Arc<G>,
    pub(crate) limits: pump::Limits,
    pub(crate) shared: Arc<crate::app::App>,
    pub(crate) stop: pump::Stop,
    pub(crate) tracker: tokio_util::task::TaskTracker,
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) permit: tokio::sync::OwnedSemaphorePermit,
}

/// One connection's session.
pub(crate) struct Session {
    /// Unique among the server's sessions.
    pub(crate) id: u64,
    /// The peer's address.
    pub(crate) peer: SocketAddr,
    /// Hand a clone to whatever should push to this session.
    pub(crate) outbox: OutboxSender,
    /// The project this session first authenticated for; `None` until it
    /// authenticates (a gate with an auth timeout closes it then).
    pub(crate) pid: Option<i64>,
    /// Set by the gate to close the session once its answers are written (`bye`).
    pub(crate) closing: bool,
    /// The logged-in user, on the client gate.
    pub(crate) client: Option<Arc<ClientHandle>>,
    pub(crate) span: tracing::Span,
    /// Subscriptions end with the session.
    events: Arc<Hub>,
}

impl Session {
    pub(crate) fn new(id: u64, peer: SocketAddr, outbox: OutboxSender, events: Arc<Hub>, span: tracing::Span) -> Self {
        Self { id, peer, outbox, pid: None, closing: false, client: None, span, events }
    }

    /// Records the project the session authenticated for, once.
    pub(crate) fn authenticated(&mut self, pid: i64) {
        if self.pid.is_none() {
            self.pid = Some(pid);
            self.span.record("pid", pid);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.events.unsubscribe(self.id);
    }
}

/// A set of methods and the rule that authorises them.
pub(crate) trait Gate: Send + Sync + 'static {
    /// Runs one quest for `session`. A twoway quest's successful answer is
    /// written into `out`; an error comes back for the pump to answer.
    /// While `stopping`, quests are refused with 20014.
    fn execute(
        &self,
        session: &mut Session,
        quest: &Quest,
        stopping: bool,
        out: &mut BytesMut,
    ) -> impl std::future::Future<Output = Result<(), RtmError>> + Send;

    /// The session has ended (whatever the reason).
    fn closed(&self, _session: &mut Session) {}
}
