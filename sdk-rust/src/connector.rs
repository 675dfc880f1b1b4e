//! Opening connections: TCP, TLS, the on-connect hook, and the backoff
//! between reconnection attempts.
//!
//! [`Connector::connect`] makes one attempt: it opens the socket (and the
//! TLS session), then runs the [`OnConnect`] hook, which sends what the
//! connection needs before any call (the server client restores what it
//! listens to; an end-user client logs in) and may fail the attempt. The
//! connection task decides when to make the next attempt, following a
//! [`Backoff`], because it has calls to queue and expire while it waits.
//!
//! This module knows quests only as frames ([`crate::quest`]); it neither
//! signs nor knows any method.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rtm_protocol::{Answer, Frame, Quest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::encryption::EncryptionSettings;
use crate::error::{Error, ErrorKind};
use crate::quest;

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

impl TlsSettings {
    /// `config`, keeping a server name set before it.
    pub(crate) fn with_config(previous: Option<Self>, config: Arc<rustls::ClientConfig>) -> Self {
        Self { config, server_name: previous.and_then(|t| t.server_name) }
    }

    /// Sets the name the server's certificate must carry, if TLS is on.
    pub(crate) fn name_server(tls: &mut Option<Self>, name: String) {
        if let Some(tls) = tls {
            tls.server_name = Some(name);
        }
    }

    /// TLS 1.2 or 1.3, trusting only the CA certificates in `ca_pem`.
    pub(crate) fn with_ca_pem(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, Error> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| Error::invalid(format!("cannot read the CA PEM: {e}")))?;
            roots.add(cert).map_err(|e| Error::invalid(format!("unusable CA certificate: {e}")))?;
            found += 1;
        }
        if found == 0 {
            return Err(Error::invalid("the CA PEM holds no certificate"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid(format!("TLS setup failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// Where the server is, how to reach it, what to send first, and how long
/// to wait between failed attempts.
pub(crate) struct Connector {
    /// `host:port`.
    pub(crate) endpoint: String,
    /// For the TCP connection, and again for the TLS handshake.
    pub(crate) connect_timeout: Duration,
    pub(crate) tls: Option<TlsSettings>,
    /// FPNN `*key` encryption instead of TLS.
    pub(crate) encryption: Option<EncryptionSettings>,
    /// The wait after the first failed reconnection attempt.
    pub(crate) backoff_min: Duration,
    /// The longest wait between attempts.
    pub(crate) backoff_max: Duration,
    /// Largest frame accepted from the server.
    pub(crate) max_frame_len: usize,
    /// Runs on every new connection before any call is written to it.
    pub(crate) on_connect: Option<Box<dyn OnConnect>>,
}

impl Connector {
    /// One attempt: opens a TCP connection, and the TLS session if
    /// configured, each within the connect timeout; then runs the
    /// on-connect hook. The attempt fails if the hook fails, or if one of
    /// its [`Handshake::call`]s left the connection unusable.
    pub(crate) async fn connect(&self) -> Result<Connected, Error> {
        let stream = self.open().await?;
        let mut handshake = Handshake::new(stream, self.max_frame_len);
        if let Some(hook) = &self.on_connect {
            let outcome = hook.on_connect(&mut handshake).await;
            if let Err(e) = outcome.and_then(|()| handshake.broken.take().map_or(Ok(()), Err)) {
                handshake.abandon(&e);
                return Err(e);
            }
        }
        Ok(handshake.link)
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
        if let Some(encryption) = &self.encryption {
            let encrypted = encryption.exchange(stream, self.max_frame_len, self.connect_timeout).await?;
            return Ok(Box::new(encrypted));
        }
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

/// The future an [`OnConnect`] hook returns.
pub(crate) type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// What runs on every new connection, the first and every reconnection,
/// before any call is written to it. It runs on the connection task: while
/// it waits, calls queue up behind it.
pub(crate) trait OnConnect: Send + Sync {
    /// Sends what the connection needs before the calls:
    /// [`Handshake::call`] waits for the answer (a login),
    /// [`Handshake::send`] does not (restoring state ahead of the calls).
    /// An error fails the attempt: the first connect returns it, and a
    /// failed reconnection fails the calls waiting for it and is retried
    /// after the backoff.
    fn on_connect<'a>(&'a self, handshake: &'a mut Handshake) -> HookFuture<'a>;
}

/// Called once with the answer to a quest the hook sent without waiting,
/// or with why there is none: a timeout, or a connection error if the
/// connection dropped, the attempt failed or the client closed first. It
/// runs on the connection task: it must not block.
pub(crate) type AnswerHandler = Box<dyn FnOnce(Result<Answer, Error>) + Send>;

/// A quest the hook sent without waiting for its answer.
pub(crate) struct Sent {
    pub(crate) seq: u32,
    pub(crate) deadline: Instant,
    pub(crate) on_answer: AnswerHandler,
}

/// A new connection, ready for the connection task.
pub(crate) struct Connected {
    pub(crate) stream: Box<dyn Stream>,
    /// What the hook sent without waiting, not yet written: the task writes
    /// it ahead of every call.
    pub(crate) wbuf: BytesMut,
    /// What was read past the hook's last answer.
    pub(crate) rbuf: BytesMut,
    /// The last seq the hook used on this connection (0 if none).
    pub(crate) last_seq: u32,
    /// The hook's quests still waiting for their answers.
    pub(crate) sent: Vec<Sent>,
    /// Quests the server sent while the hook waited, in order, for the push
    /// handlers.
    pub(crate) pushes: Vec<Quest>,
}

/// A new connection while its on-connect hook runs. Quests are encoded
/// with [`crate::quest`] (seq 0, signed or not as the hook needs); the
/// handshake stamps their seqs.
pub(crate) struct Handshake {
    link: Connected,
    max_frame_len: usize,
    /// Set when a call failed in a way that leaves the stream unusable.
    broken: Option<Error>,
}

impl Handshake {
    fn new(stream: Box<dyn Stream>, max_frame_len: usize) -> Self {
        let link = Connected {
            stream,
            wbuf: BytesMut::with_capacity(16 * 1024),
            rbuf: BytesMut::with_capacity(16 * 1024),
            last_seq: 0,
            sent: Vec::new(),
            pushes: Vec::new(),
        };
        Self { link, max_frame_len, broken: None }
    }

    /// Queues `frame` to be written ahead of every call, without waiting
    /// for its answer: the connection task hands the answer to `on_answer`,
    /// or fails it after `timeout`.
    pub(crate) fn send(&mut self, frame: &[u8], timeout: Duration, on_answer: AnswerHandler) {
        let seq = self.append(frame);
        self.link.sent.push(Sent { seq, deadline: Instant::now() + timeout, on_answer });
    }

    /// Appends `frame` to the write buffer under the next seq.
    fn append(&mut self, frame: &[u8]) -> u32 {
        let link = &mut self.link;
        link.last_seq = link.last_seq.wrapping_add(1).max(1);
        let at = link.wbuf.len();
        link.wbuf.extend_from_slice(frame);
        quest::stamp(&mut link.wbuf[at..], link.last_seq);
        link.last_seq
    }

    /// The attempt failed: the quests sent without waiting get no answer.
    fn abandon(&mut self, error: &Error) {
        for sent in self.link.sent.drain(..) {
            (sent.on_answer)(Err(Error::connection(format!("the connection attempt failed: {error}"))));
        }
    }
}

/// Waiting for answers, which a login needs (`end_user.rs`).
impl Handshake {
    /// Sends `frame` (after whatever [`send`](Self::send) queued) and waits
    /// for its answer, at most `timeout`. An answer with an error status is
    /// returned as it is, for the hook to read; an `Err` (timeout,
    /// connection lost, malformed frame) means the connection is unusable
    /// and fails the attempt even if the hook goes on.
    pub(crate) async fn call(&mut self, frame: &[u8], timeout: Duration) -> Result<Answer, Error> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        let seq = self.append(frame);
        let result = match tokio::time::timeout(timeout, self.exchange(seq)).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(ErrorKind::Timeout, "no answer within the quest timeout")),
        };
        if let Err(e) = &result {
            self.broken = Some(e.clone());
        }
        result
    }

    /// Writes what is queued, then reads until the answer to `seq` arrives.
    async fn exchange(&mut self, seq: u32) -> Result<Answer, Error> {
        let lost = |e: std::io::Error| Error::connection("the connection dropped while connecting").with_source(e);
        let link = &mut self.link;
        link.stream.write_all(&link.wbuf).await.map_err(lost)?;
        link.wbuf.clear();
        link.stream.flush().await.map_err(lost)?;
        loop {
            while let Some(frame) = Frame::decode(&mut link.rbuf, self.max_frame_len)
                .map_err(|e| Error::new(ErrorKind::Protocol, format!("malformed frame from the server: {e}")))?
            {
                match frame {
                    Frame::Answer(answer) if answer.seq == seq => return Ok(answer),
                    Frame::Answer(answer) => match link.sent.iter().position(|s| s.seq == answer.seq) {
                        Some(i) => (link.sent.swap_remove(i).on_answer)(Ok(answer)),
                        None => debug!(seq = answer.seq, "answer for no quest of the handshake"),
                    },
                    Frame::Quest(push) => link.pushes.push(push),
                }
            }
            if link.stream.read_buf(&mut link.rbuf).await.map_err(lost)? == 0 {
                return Err(Error::connection("the server closed the connection while connecting"));
            }
        }
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
            encryption: None,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(300),
            max_frame_len: rtm_protocol::DEFAULT_MAX_FRAME_LEN,
            on_connect: None,
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
