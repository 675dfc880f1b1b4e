//! Opening connections: TCP, TLS, and the backoff between reconnection
//! attempts.
//!
//! [`Connector::connect`] makes one attempt. The connection task decides
//! when to make the next one, following a [`Backoff`], because it has calls
//! to queue and expire while it waits.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::Error;

/// A byte stream the client can talk FPNN over.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// How to secure the connection.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    pub(crate) config: Arc<rustls::ClientConfig>,
    /// The name the server's certificate must carry; by default the
    /// endpoint's host.
    pub(crate) server_name: Option<String>,
}

/// Where the server is, how to reach it, and how long to wait between
/// failed attempts.
pub(crate) struct Connector {
    /// `host:port`.
    pub(crate) endpoint: String,
    /// For the TCP connection, and again for the TLS handshake.
    pub(crate) connect_timeout: Duration,
    pub(crate) tls: Option<TlsSettings>,
    /// The wait after the first failed reconnection attempt.
    pub(crate) backoff_min: Duration,
    /// The longest wait between attempts.
    pub(crate) backoff_max: Duration,
}

impl Connector {
    /// One attempt: opens a TCP connection, and the TLS session if
    /// configured, each within the connect timeout.
    pub(crate) async fn connect(&self) -> Result<Box<dyn Stream>, Error> {
        self.open().await
    }

    async fn open(&self) -> Result<Box<dyn Stream>, Error> {
        let endpoint = &self.endpoint;
        let connect = TcpStream::connect(endpoint.as_str());
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Error::connection(format!("cannot connect to {endpoint}")).with_source(e)),
            Err(_) => {
                return Err(Error::connection(format!(
                    "cannot connect to {endpoint} within {:?}",
                    self.connect_timeout
                )))
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Box::new(stream));
        };
        let host = tls.server_name.clone().unwrap_or_else(|| host_of(endpoint).to_owned());
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| Error::invalid(format!("'{host}' is not a valid TLS server name: {e}")))?;
        let handshake = tokio_rustls::TlsConnector::from(tls.config.clone()).connect(name, stream);
        match tokio::time::timeout(self.connect_timeout, handshake).await {
            Ok(Ok(stream)) => Ok(Box::new(stream)),
            Ok(Err(e)) => Err(Error::connection(format!("TLS handshake with {endpoint} failed")).with_source(e)),
            Err(_) => Err(Error::connection(format!("TLS handshake with {endpoint} timed out"))),
        }
    }

    /// The schedule of attempts after a connection drops.
    pub(crate) fn backoff(&self) -> Backoff {
        Backoff { delay: self.backoff_min, max: self.backoff_max, failures: 0, next_attempt: Instant::now() }
    }
}

/// When to attempt the next reconnection: at once after the connection
/// drops, then `backoff_min` after the first failure, doubling up to
/// `backoff_max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    delay: Duration,
    max: Duration,
    failures: u32,
    next_attempt: Instant,
}

impl Backoff {
    /// When the next attempt is due.
    pub(crate) fn next_attempt(&self) -> Instant {
        self.next_attempt
    }

    /// Records a failed attempt: returns how many attempts have failed so
    /// far and the wait before the next.
    pub(crate) fn failed(&mut self) -> (u32, Duration) {
        self.failures += 1;
        let delay = self.delay;
        self.next_attempt = Instant::now() + delay;
        self.delay = (delay * 2).min(self.max);
        (self.failures, delay)
    }
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(endpoint: &str) -> &str {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector() -> Connector {
        Connector {
            endpoint: "127.0.0.1:1".into(),
            connect_timeout: Duration::from_secs(1),
            tls: None,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(300),
        }
    }

    #[test]
    fn host_of_strips_the_port() {
        assert_eq!(host_of("example.com:13322"), "example.com");
        assert_eq!(host_of("[::1]:13322"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }

    #[test]
    fn the_first_attempt_is_immediate_then_the_wait_doubles_up_to_the_maximum() {
        let before = Instant::now();
        let mut backoff = connector().backoff();
        assert!(backoff.next_attempt() <= Instant::now() && backoff.next_attempt() >= before);
        let delays: Vec<_> = (0..5).map(|_| backoff.failed()).collect();
        let ms = |ms| Duration::from_millis(ms);
        assert_eq!(delays, vec![(1, ms(50)), (2, ms(100)), (3, ms(200)), (4, ms(300)), (5, ms(300))]);
        assert!(backoff.next_attempt() >= before + ms(300));
    }
}
