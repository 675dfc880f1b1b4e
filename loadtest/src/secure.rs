//! How the harness's connections are secured: plain TCP, FPNN `*key`
//! encryption, or TLS, so that the three can be measured in one run.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rtm_protocol::encryption::{Bits, EncryptedStream, Mode, PublicKey};
use tokio::net::TcpStream;

/// The security of every load connection.
#[derive(Clone, Default)]
pub enum Secure {
    /// Plain FPNN.
    #[default]
    Plain,
    /// FPNN `*key`: the server's public key, the mode and key size.
    Encrypted {
        /// The server's public key (`rtm-server keygen`'s PEM).
        key: PublicKey,
        /// Package or stream mode.
        mode: Mode,
        /// AES-128 or AES-256.
        bits: Bits,
    },
    /// FPNN inside TLS.
    Tls {
        /// Trusting the server's CA.
        config: Arc<rustls::ClientConfig>,
        /// The name the certificate must carry.
        name: rustls::pki_types::ServerName<'static>,
    },
}

impl std::fmt::Debug for Secure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain => f.write_str("plain"),
            Self::Encrypted { key, mode, bits } => write!(f, "*key {} {mode:?} {bits:?}", key.curve()),
            Self::Tls { name, .. } => write!(f, "TLS ({name:?})"),
        }
    }
}

impl Secure {
    /// `*key` with the public key in `pem`.
    pub fn encrypted(pem: &[u8], mode: Mode, bits: Bits) -> Result<Self, String> {
        let key = PublicKey::from_pem_or_der(pem).map_err(|e| e.to_string())?;
        Ok(Self::Encrypted { key, mode, bits })
    }

    /// TLS trusting the CA certificates in `ca_pem`, expecting `name`.
    pub fn tls(ca_pem: &[u8], name: &str) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
        Ok(Self::Tls { config: Arc::new(config), name })
    }
}

/// An open load connection, of whichever kind.
pub(crate) enum Opened {
    Plain(TcpStream),
    Encrypted(Box<EncryptedStream<TcpStream>>),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Connects to `addr` and runs the handshake `secure` asks for.
pub(crate) async fn open(addr: SocketAddr, secure: &Secure) -> io::Result<Opened> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(match secure {
        Secure::Plain => Opened::Plain(stream),
        Secure::Encrypted { key, mode, bits } => {
            Opened::Encrypted(Box::new(EncryptedStream::connect(stream, key, *mode, *bits, 64 << 20).await?))
        }
        Secure::Tls { config, name } => {
            let tls = tokio_rustls::TlsConnector::from(config.clone()).connect(name.clone(), stream).await?;
            Opened::Tls(Box::new(tls))
        }
    })
}
