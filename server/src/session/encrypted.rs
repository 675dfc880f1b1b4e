//! FPNN `*key` encryption on a gate's plain TCP endpoints.
//!
//! On a gate with `ecdh.key_path` set, a connection's first packet is read
//! here before the pump starts. When it is the `*key` quest, the key
//! exchange runs (ECDH on the gate's curve, FPNN's key derivation), the
//! answer goes out already encrypted, and the pump runs on an
//! [`EncryptedStream`]. Any other first packet is handed to the pump as it
//! came, on the bare socket, unless the gate requires encryption. So plain
//! connections pay one extra read at connect and nothing after; gates
//! without a key never come here.
//!
//! Every failure closes the connection, without an answer (as the C++
//! server does), with a log line and `rtm_key_exchanges_total{result}`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use rtm_protocol::encryption::{Curve, EncryptedStream, KeyExchange, PrivateKey, SessionKeys, KEY_METHOD};
use rtm_protocol::methods::Empty;
use rtm_protocol::{payload, write_answer, Frame, MessageType, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::pump;
use super::{Accepted, Gate, Transport};
use crate::config::EcdhConfig;
use crate::error::ServerError;

// Boxed: the cipher states are kilobytes, and plain sessions should not carry the space.
impl Transport for Box<EncryptedStream<TcpStream>> {
    fn kind(&self) -> &'static str {
        "ecdh"
    }
}

/// A gate's `*key` settings, loaded.
pub(crate) struct GateKey {
    key: PrivateKey,
    required: bool,
}

impl GateKey {
    /// Reads the private key, or `None` when the gate has no key configured.
    pub(crate) fn load(gate: &'static str, config: &EcdhConfig) -> Result<Option<Arc<Self>>, ServerError> {
        if !config.enabled() {
            return Ok(None);
        }
        let fail = |why: String| ServerError::Key { gate, why };
        let curve = config.curve().map_err(|e| fail(e.to_string()))?;
        let raw = std::fs::read(&config.key_path).map_err(|e| fail(format!("cannot read {}: {e}", config.key_path)))?;
        let key = PrivateKey::from_raw(curve, &raw).map_err(|e| fail(format!("{}: {e}", config.key_path)))?;
        info!(gate, %curve, required = config.required, "*key encryption on");
        Ok(Some(Arc::new(Self { key, required: config.required })))
    }
}

/// The files `rtm-server keygen` writes into its directory.
pub const PRIVATE_KEY_FILE: &str = "server-key.bin";
/// The public key, for client builds.
pub const PUBLIC_KEY_FILE: &str = "server-public.pem";

/// Writes a new key pair on `curve` into `dir` (created if missing): the raw
/// private key (mode 0600 on Unix) for `gates.<gate>.ecdh.key_path`, and the
/// public key in PEM for client builds. Existing files are kept unless
/// `overwrite`: replacing a key locks out every client built with the old one.
pub fn write_key_pair(curve: Curve, dir: &Path, overwrite: bool) -> std::io::Result<(PathBuf, PathBuf)> {
    use std::io::Write;
    let (private, public) = (dir.join(PRIVATE_KEY_FILE), dir.join(PUBLIC_KEY_FILE));
    if !overwrite {
        for path in [&private, &public] {
            if path.exists() {
                let why = format!("{} exists; pass --force to replace it", path.display());
                return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, why));
            }
        }
    }
    std::fs::create_dir_all(dir)?;
    let key = PrivateKey::generate(curve, &mut rand_core::OsRng);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&private)?;
    file.write_all(&key.to_raw())?;
    file.sync_all()?;
    std::fs::write(&public, key.public_key().to_pem())?;
    Ok((private, public))
}

/// Why a connection was closed before its pump started.
#[derive(Debug)]
enum Refused {
    /// Nothing (or not a whole first packet) within the idle (or auth) timeout.
    Timeout,
    /// The peer closed first.
    Closed,
    /// Plain FPNN on a gate that requires encryption.
    Required,
    /// `*key` with parameters that cannot be used.
    BadKey(String),
    Io(std::io::Error),
}

impl Refused {
    fn label(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Required => "plain_refused",
            Self::BadKey(_) => "bad_key",
            Self::Io(_) => "io",
        }
    }
}

/// What the first packet made of the connection.
enum Opened {
    /// Not `*key`: the pump starts on the socket with what was read.
    Plain(TcpStream, BytesMut),
    /// `*key`: the exchange is done and answered.
    Encrypted(Box<EncryptedStream<TcpStream>>, &'static str),
}

/// Serves one connection of a gate with `*key` configured.
pub(crate) async fn serve<G: Gate>(stream: TcpStream, key: Arc<GateKey>, accepted: Accepted<G>) {
    let Accepted { gate, mut limits, shared, stop, id, peer, permit, .. } = accepted;
    // The first packet is due within the idle timeout, or the auth timeout where shorter.
    let wait = limits.auth_timeout.map_or(limits.idle_timeout, |auth| auth.min(limits.idle_timeout));
    let accepted_at = tokio::time::Instant::now();
    let opened = tokio::select! {
        opened = tokio::time::timeout(wait, open(stream, &key, limits.max_frame_len, peer)) => {
            opened.unwrap_or(Err(Refused::Timeout))
        }
        _ = stop.drain.cancelled() => return,
    };
    // The pump's auth timer counts from the accept, not from the first packet.
    limits.auth_timeout = limits.auth_timeout.map(|auth| auth.saturating_sub(accepted_at.elapsed()));
    match opened {
        Ok(Opened::Plain(stream, read)) => {
            pump::serve(stream, read, peer, id, gate, limits, shared, stop, permit).await;
        }
        Ok(Opened::Encrypted(stream, mode)) => {
            shared.metrics.key_exchange(mode);
            pump::serve(stream, BytesMut::new(), peer, id, gate, limits, shared, stop, permit).await;
        }
        Err(refused) => {
            shared.metrics.key_exchange(refused.label());
            match &refused {
                Refused::Closed => debug!(%peer, "closed before its first packet"),
                Refused::Timeout => info!(%peer, "closed: no first packet within the idle timeout"),
                Refused::Required => info!(%peer, "closed: this gate requires *key encryption (ecdh.required)"),
                Refused::BadKey(why) => info!(%peer, why, "closed: *key exchange failed"),
                Refused::Io(e) => debug!(%peer, error = %e, "closed: i/o error before the first packet"),
            }
        }
    }
}

/// Reads the first packet and, when it is `*key`, runs the exchange.
async fn open(mut stream: TcpStream, key: &GateKey, max_frame_len: usize, peer: SocketAddr) -> Result<Opened, Refused> {
    let mut read = BytesMut::with_capacity(512);
    loop {
        match first_packet(&read) {
            First::NeedMore => {}
            First::Other if key.required => return Err(Refused::Required),
            First::Other => return Ok(Opened::Plain(stream, read)),
            First::Key => {
                // The whole quest, or a frame error the pump would have closed on.
                match Frame::decode(&mut read, max_frame_len) {
                    Ok(Some(Frame::Quest(quest))) => {
                        let exchange = payload::parse(quest.encoding, &quest.payload)
                            .map_err(|e| Refused::BadKey(e.to_string()))
                            .and_then(|value| {
                                KeyExchange::from_value(&value).map_err(|e| Refused::BadKey(e.to_string()))
                            })?;
                        let secret = key.key.agree(&exchange.public_key).map_err(|e| Refused::BadKey(e.to_string()))?;
                        let keys = SessionKeys::derive(&secret, exchange.bits);
                        let mut encrypted = EncryptedStream::new(stream, &keys, exchange.mode, max_frame_len, &read)
                            .map_err(|e| Refused::BadKey(e.to_string()))?;
                        // The answer is the first encrypted packet.
                        if let Some(seq) = quest.seq {
                            let mut answer = BytesMut::new();
                            write_answer(&mut answer, quest.version, quest.encoding, seq, 0, &Empty {})
                                .expect("an empty map encodes");
                            encrypted.write_all(&answer).await.map_err(Refused::Io)?;
                            encrypted.flush().await.map_err(Refused::Io)?;
                        }
                        let mode = match exchange.mode {
                            rtm_protocol::encryption::Mode::Package => "package",
                            rtm_protocol::encryption::Mode::Stream => "stream",
                        };
                        debug!(%peer, mode, bits = exchange.bits.number(), "*key: encrypted");
                        return Ok(Opened::Encrypted(Box::new(encrypted), mode));
                    }
                    Ok(_) => {}
                    Err(_) => return Ok(Opened::Plain(stream, read)),
                }
            }
        }
        match stream.read_buf(&mut read).await {
            Ok(0) if read.is_empty() => return Err(Refused::Closed),
            // Half a first packet: the pump reports it like any other.
            Ok(0) => return Ok(Opened::Plain(stream, read)),
            Ok(_) => {}
            Err(e) => return Err(Refused::Io(e)),
        }
    }
}

enum First {
    NeedMore,
    Key,
    Other,
}

/// Whether `read` starts with the `*key` quest, as far as it goes.
fn first_packet(read: &[u8]) -> First {
    let method = KEY_METHOD.as_bytes();
    let Some(header) = read.get(..HEADER_LEN) else {
        // Decide early on what cannot become a `*key` quest.
        return match read.iter().zip(b"FPNN").all(|(a, b)| a == b) {
            true => First::NeedMore,
            false => First::Other,
        };
    };
    let quest = header[6] == MessageType::Twoway as u8 || header[6] == MessageType::Oneway as u8;
    if &header[..4] != b"FPNN" || !quest || usize::from(header[7]) != method.len() {
        return First::Other;
    }
    // Twoway quests have a 4-byte sequence number before the method.
    let at = HEADER_LEN + if header[6] == MessageType::Twoway as u8 { 4 } else { 0 };
    match read.get(at..at + method.len()) {
        None => First::NeedMore,
        Some(name) if name == method => First::Key,
        Some(_) => First::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quest(method: &str, twoway: bool) -> Vec<u8> {
        let mut buf = BytesMut::new();
        let seq = twoway.then_some(1);
        rtm_protocol::write_quest(&mut buf, rtm_protocol::Encoding::MsgPack, seq, method, &Empty {}).unwrap();
        buf.to_vec()
    }

    #[test]
    fn recognizes_the_key_quest_from_its_first_bytes() {
        let key = quest("*key", true);
        for n in 0..16 {
            assert!(matches!(first_packet(&key[..n]), First::NeedMore), "{n} bytes");
        }
        assert!(matches!(first_packet(&key[..16 + 4]), First::Key));
        assert!(matches!(first_packet(&quest("*key", false)), First::Key));
        assert!(matches!(first_packet(&quest("auth", true)), First::Other));
        assert!(matches!(first_packet(&quest("getroomcount", true)), First::Other));
        assert!(matches!(first_packet(b"GET / HTTP/1.1\r\n"), First::Other));
        assert!(matches!(first_packet(b"FPX"), First::Other));
    }
}
