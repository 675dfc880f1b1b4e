//! Quests the server pushes to the client.

use bytes::Bytes;
use rtm_protocol::{payload, Encoding};
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};

/// A quest pushed by the server, handed to the handler registered for its
/// method with [`ClientOptions::on_push`](crate::ClientOptions::on_push).
/// A twoway push is answered `{}` after the handler returns.
#[derive(Debug, Clone)]
pub struct PushQuest {
    pub(crate) method: String,
    pub(crate) encoding: Encoding,
    pub(crate) payload: Bytes,
    pub(crate) twoway: bool,
}

impl PushQuest {
    /// The method name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Whether the server waits for an answer.
    pub fn is_twoway(&self) -> bool {
        self.twoway
    }

    /// The raw payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Reads the payload as `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        payload::decode(self.encoding, &self.payload)
            .map_err(|e| Error::new(ErrorKind::Protocol, format!("push '{}': {e}", self.method)))
    }
}

/// A push handler. It runs on the connection task, so it must not block;
/// hand long work to another task.
pub(crate) type PushHandler = std::sync::Arc<dyn Fn(PushQuest) + Send + Sync>;
