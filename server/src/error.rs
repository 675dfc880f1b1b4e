//! Errors: per-quest errors that become error answers, and fatal server errors.

use std::borrow::Cow;

use rtm_protocol::{ErrorAnswer, ErrorCode, PayloadError};

/// A quest failed; the client gets `{code, ex}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RtmError {
    pub(crate) code: ErrorCode,
    pub(crate) ex: Cow<'static, str>,
}

impl RtmError {
    pub(crate) fn new(code: ErrorCode, ex: impl Into<Cow<'static, str>>) -> Self {
        Self { code, ex: ex.into() }
    }

    pub(crate) fn to_answer(&self) -> ErrorAnswer {
        ErrorAnswer { code: self.code.code(), ex: self.ex.to_string() }
    }
}

impl From<PayloadError> for RtmError {
    fn from(e: PayloadError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl std::fmt::Display for RtmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code.code(), self.ex)
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// A listener from the config could not be bound.
    #[error("{what} = {addr}: cannot listen: {source}")]
    Bind {
        /// The config key.
        what: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data directory cannot be loaded.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// A gate's `*key` private key cannot be used.
    #[error("gates.{gate}.ecdh: {why}")]
    Key {
        /// The gate.
        gate: &'static str,
        /// Why.
        why: String,
    },
    /// The recordings directory cannot be read.
    #[error("recording: {0}")]
    Recording(String),
    /// The `redis` engine could not reach or prepare its cluster.
    #[error("engine: {0}")]
    Engine(String),
    /// The history store cannot be opened.
    #[error("cannot open the message history store: {0}")]
    History(String),
}
