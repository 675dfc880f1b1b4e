//! The TLS listener's certificate: loaded once at start, swapped on reload.
//!
//! Connections keep the configuration they were accepted with, so a reload
//! never disturbs live connections; new handshakes use the new certificate.

use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::{ConfigError, TlsConfig};

/// The current TLS acceptor and where its certificate comes from.
pub(crate) struct TlsState {
    cert_path: String,
    key_path: String,
    acceptor: RwLock<TlsAcceptor>,
}

impl TlsState {
    /// Loads the certificate and key; errors name the file and the problem.
    pub(crate) fn load(config: &TlsConfig) -> Result<Self, ConfigError> {
        let acceptor = acceptor(&config.cert_path, &config.key_path)?;
        Ok(Self {
            cert_path: config.cert_path.clone(),
            key_path: config.key_path.clone(),
            acceptor: RwLock::new(acceptor),
        })
    }

    /// The acceptor for a new connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the certificate and key; on failure the old ones stay.
    pub(crate) fn reload(&self) -> Result<(), ConfigError> {
        let fresh = acceptor(&self.cert_path, &self.key_path)?;
        *self.acceptor.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

fn acceptor(cert_path: &str, key_path: &str) -> Result<TlsAcceptor, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| ConfigError::new(format!("tls.cert_path: cannot read certificates from {cert_path}: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::new(format!("tls.cert_path: no certificate in {cert_path}")));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| ConfigError::new(format!("tls.key_path: cannot read a private key from {key_path}: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConfigError::new(format!("tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ConfigError::new(format!("tls: the certificate and key do not fit together: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
