//! Client options.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Settings;
use crate::connector::{Connector, OnConnect, TlsSettings};
use crate::encryption::EncryptionSettings;
use crate::error::Error;
use crate::event::{ConnectionEvent, EventHandler};
use crate::push::{PushHandler, PushQuest};
use crate::room_events::{RoomEvent, RoomEventHandler, DEFAULT_BUFFER};
use rtm_protocol::encryption::{Bits, Mode as EncryptionMode};

/// How to reach the server and how the client behaves.
///
/// ```
/// use std::time::Duration;
/// use rtm_sdk::ClientOptions;
///
/// let options = ClientOptions::new("127.0.0.1:13315", 11000001, "demo-secret-for-local-use-only")
///     .quest_timeout(Duration::from_secs(5))
///     .keepalive(Some(Duration::from_secs(20)))
///     .on_event(|event| println!("{event:?}"));
/// ```
#[derive(Clone)]
pub struct ClientOptions {
    pub(crate) endpoint: String,
    pub(crate) pid: i64,
    pub(crate) secret: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) quest_timeout: Duration,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) auto_reconnect: bool,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) max_frame_len: usize,
    pub(crate) on_event: Option<EventHandler>,
    pub(crate) push_handlers: HashMap<String, PushHandler>,
    pub(crate) on_room_event: Option<RoomEventHandler>,
    pub(crate) room_event_buffer: usize,
    pub(crate) tls: Option<TlsSettings>,
    pub(crate) encryption: Option<EncryptionSettings>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("endpoint", &self.endpoint)
            .field("pid", &self.pid)
            .field("secret", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("quest_timeout", &self.quest_timeout)
            .field("keepalive", &self.keepalive)
            .field("auto_reconnect", &self.auto_reconnect)
            .field("push_handlers", &self.push_handlers.keys().collect::<Vec<_>>())
            .field("on_room_event", &self.on_room_event.is_some())
            .field("room_event_buffer", &self.room_event_buffer)
            .field("tls", &self.tls.is_some())
            .field("encryption", &self.encryption.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// Options for the server at `endpoint` (`host:port`), signing as
    /// project `pid` with `secret`.
    ///
    /// Defaults: connect timeout 5 s, quest timeout 30 s (as the RTM SDKs),
    /// no keep-alive, auto-reconnect on with backoff from 50 ms to 5 s.
    pub fn new(endpoint: impl Into<String>, pid: i64, secret: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            pid,
            secret: secret.into(),
            connect_timeout: Duration::from_secs(5),
            quest_timeout: Duration::from_secs(30),
            keepalive: None,
            auto_reconnect: true,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            max_frame_len: rtm_protocol::DEFAULT_MAX_FRAME_LEN,
            on_event: None,
            push_handlers: HashMap::new(),
            on_room_event: None,
            room_event_buffer: DEFAULT_BUFFER,
            tls: None,
            encryption: None,
        }
    }

    /// How long to wait for a TCP connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a call waits for its answer (per call:
    /// [`RtmServerClient::with_timeout`](crate::RtmServerClient::with_timeout)).
    pub fn quest_timeout(mut self, timeout: Duration) -> Self {
        self.quest_timeout = timeout;
        self
    }

    /// Send `*ping` at this interval (`None`, the default, sends none). A
    /// ping unanswered within the interval drops the connection, which then
    /// reconnects. Keep it under the server's idle timeout (60 s by default).
    pub fn keepalive(mut self, interval: Option<Duration>) -> Self {
        self.keepalive = interval;
        self
    }

    /// Reconnect after the connection drops (on by default). Calls in flight
    /// when it drops fail with a connection error either way.
    pub fn auto_reconnect(mut self, enabled: bool) -> Self {
        self.auto_reconnect = enabled;
        self
    }

    /// The wait before reconnection attempts: `min` after the first failure,
    /// doubling up to `max`.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// Largest frame accepted from the server (default 8 MiB).
    pub fn max_frame_len(mut self, len: usize) -> Self {
        self.max_frame_len = len;
        self
    }

    /// Called on connect, disconnect, each failed reconnection attempt, a
    /// failed restore of the listen state after a reconnect, and close. It
    /// runs on the connection task: it must not block.
    pub fn on_event(mut self, handler: impl Fn(&ConnectionEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(handler));
        self
    }

    /// Connect over TLS (1.2 or 1.3), trusting only the CA certificates in
    /// `ca_pem` (PEM; one or more certificates). Use this for a server with
    /// a private CA or a self-signed certificate.
    pub fn tls_with_ca_pem(self, ca_pem: &[u8]) -> Result<Self, Error> {
        Ok(self.tls_config(TlsSettings::with_ca_pem(ca_pem)?))
    }

    /// Connect over TLS with a rustls configuration of your own (for example
    /// with the operating system's or webpki's root certificates).
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(TlsSettings::with_config(self.tls.take(), config));
        self.encryption = None;
        self
    }

    /// The name the server's certificate must be valid for, when it differs
    /// from the endpoint's host (e.g. connecting to an IP address).
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        TlsSettings::name_server(&mut self.tls, name.into());
        self
    }

    /// Encrypt the connection with FPNN `*key` (ECDH, then AES-CFB) instead
    /// of TLS, with the server's public key as `rtm-server keygen` wrote it
    /// (PEM, or DER); the key's curve is read from it. `mode` is package
    /// (the Python, Java and C++ SDKs) or stream (the Go SDK); `bits` 128
    /// or 256. Replaces TLS if it was set. The server's gate needs
    /// `ecdh.key_path` with the matching private key.
    pub fn enable_encryption(mut self, public_key_pem: &[u8], mode: EncryptionMode, bits: Bits) -> Result<Self, Error> {
        self.encryption = Some(EncryptionSettings::new(public_key_pem, mode, bits)?);
        self.tls = None;
        Ok(self)
    }

    /// Handles quests the server pushes with this method name. One handler
    /// per name: a second registration for the same name is an error.
    ///
    /// A handler for `pushevent` gets the raw quest before it becomes a
    /// [`RoomEvent`] for [`on_room_event`](Self::on_room_event) and the
    /// event streams.
    pub fn on_push(
        mut self,
        method: impl Into<String>,
        handler: impl Fn(PushQuest) + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let method = method.into();
        if self.push_handlers.contains_key(&method) {
            return Err(Error::invalid(format!("a push handler for '{method}' is already registered")));
        }
        self.push_handlers.insert(method, Arc::new(handler));
        Ok(self)
    }

    /// Called with every room event the server pushes to this client (see
    /// [`RtmServerClient::add_listen`](crate::RtmServerClient::add_listen)).
    /// It runs on the connection task: it must not block. Works alongside
    /// [`RtmServerClient::room_events`](crate::RtmServerClient::room_events)
    /// streams; each gets every event.
    pub fn on_room_event(mut self, handler: impl Fn(RoomEvent) + Send + Sync + 'static) -> Self {
        self.on_room_event = Some(Arc::new(handler));
        self
    }

    /// How many room events each
    /// [`RoomEventStream`](crate::RoomEventStream) holds for a slow reader
    /// (default 1024). A stream further behind loses its oldest events and
    /// is told how many ([`Lagged`](crate::Lagged)).
    pub fn room_event_buffer(mut self, capacity: usize) -> Self {
        self.room_event_buffer = capacity.max(1);
        self
    }
}

impl ClientOptions {
    /// What the connection task needs: the connector (with `on_connect` as
    /// its hook) and the task's settings. The push handlers move into the
    /// settings, so that the task alone owns them.
    pub(crate) fn into_connection(self, on_connect: Option<Box<dyn OnConnect>>) -> (Connector, Settings) {
        let connector = Connector {
            endpoint: self.endpoint,
            connect_timeout: self.connect_timeout,
            tls: self.tls,
            encryption: self.encryption,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            max_frame_len: self.max_frame_len,
            on_connect,
        };
        let settings = Settings {
            keepalive: self.keepalive,
            auto_reconnect: self.auto_reconnect,
            on_event: self.on_event,
            push_handlers: self.push_handlers,
        };
        (connector, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_push_handlers_are_refused() {
        let options = ClientOptions::new("127.0.0.1:1", 1, "s").on_push("pushevent", |_| {}).unwrap();
        assert!(options.on_push("pushevent", |_| {}).is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let text = format!("{:?}", ClientOptions::new("h:1", 1, "very-secret"));
        assert!(!text.contains("very-secret"));
    }
}
