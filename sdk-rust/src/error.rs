//! The SDK's one public error type.

use std::fmt;
use std::sync::Arc;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server answered with an error `{code, ex}`.
    Server,
    /// No answer arrived within the quest timeout.
    Timeout,
    /// The connection could not be made, or dropped while the call was in
    /// flight, or the client was closed.
    Connection,
    /// The server sent something this SDK could not understand.
    Protocol,
    /// The call was refused before it was sent (bad argument, or a blocking
    /// call made from inside an async runtime).
    InvalidArgument,
}

/// A failed call.
///
/// [`code`](Self::code) is the server's numeric error code for
/// [`ErrorKind::Server`], and the code the FPNN SDKs use for the same local
/// failure otherwise (20003 timeout, 20002 connection, 20006 protocol,
/// 200034 invalid argument), so code written against the other RTM SDKs
/// keeps matching.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    code: i64,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let code = match kind {
            ErrorKind::Server => codes::UNKNOWN_ERROR,
            ErrorKind::Timeout => codes::TIMEOUT,
            ErrorKind::Connection => codes::CONNECTION_CLOSED,
            ErrorKind::Protocol => codes::DECODING,
            ErrorKind::InvalidArgument => codes::INVALID_PARAMETER,
        };
        Self { kind, code, message: message.into(), source: None }
    }

    pub(crate) fn server(code: i64, ex: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Server, code, message: ex.into(), source: None }
    }

    pub(crate) fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    pub(crate) fn connection(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Connection, message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The numeric error code (see the type's documentation).
    pub fn code(&self) -> i64 {
        self.code
    }

    /// The server's `ex` text, or a description of the local failure.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether this is a server error answer with the given code.
    pub fn is_server_code(&self, code: i64) -> bool {
        self.kind == ErrorKind::Server && self.code == code
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("code", &self.code)
            .field("message", &self.message)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Server => write!(f, "server error {}: {}", self.code, self.message)?,
            ErrorKind::Timeout => write!(f, "timeout: {}", self.message)?,
            ErrorKind::Connection => write!(f, "connection error: {}", self.message)?,
            ErrorKind::Protocol => write!(f, "protocol error: {}", self.message)?,
            ErrorKind::InvalidArgument => write!(f, "invalid argument: {}", self.message)?,
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// Error codes users commonly match on, with their RTM / FPNN values.
pub mod codes {
    /// A required parameter is missing.
    pub const MISSING_PARAMETER: i64 = 10009;
    /// A parameter has the wrong type.
    pub const WRONG_PARAMETER_TYPE: i64 = 10010;
    /// Unknown server-side error.
    pub const UNKNOWN_ERROR: i64 = 20001;
    /// The connection closed (local).
    pub const CONNECTION_CLOSED: i64 = 20002;
    /// The call timed out (local).
    pub const TIMEOUT: i64 = 20003;
    /// The server does not know the method.
    pub const UNKNOWN_METHOD: i64 = 20004;
    /// An answer could not be decoded (local).
    pub const DECODING: i64 = 20006;
    /// The server is shutting down.
    pub const SERVER_STOPPING: i64 = 20014;
    /// Unknown pid or bad signature.
    pub const INVALID_PID_OR_SIGN: i64 = 200002;
    /// A replayed quest.
    pub const SAME_SIGN: i64 = 200006;
    /// The quest's `ts` is outside the server's window (check the clock).
    pub const INVALID_SERVER_TIME: i64 = 200008;
    /// Rate limited.
    pub const FREQUENCY_LIMITED: i64 = 200010;
    /// Info or message too large.
    pub const LARGE_MESSAGE_OR_ATTRS: i64 = 200030;
    /// Too many items in a list parameter.
    pub const TOO_MANY_ITEMS_IN_PARAMETERS: i64 = 200032;
    /// An empty list parameter.
    pub const EMPTY_PARAMETER: i64 = 200033;
    /// An invalid parameter value.
    pub const INVALID_PARAMETER: i64 = 200034;
    /// Not in the room.
    pub const NOT_IN_ROOM: i64 = 200040;
    /// Banned in the room.
    pub const BANNED_IN_ROOM: i64 = 200045;
    /// Duplicated message id: the mid was used for another message.
    pub const DUPLICATED_MID: i64 = 200053;
    /// The feature is off on the server (e.g. message history).
    pub const FEATURE_OFF: i64 = 200060;
    /// The message is not in history.
    pub const MESSAGE_NOT_FOUND: i64 = 200070;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_errors_carry_the_fpnn_codes() {
        assert_eq!(Error::new(ErrorKind::Timeout, "x").code(), 20003);
        assert_eq!(Error::connection("x").code(), 20002);
        let e = Error::server(200045, "banned");
        assert!(e.is_server_code(codes::BANNED_IN_ROOM));
        assert_eq!(e.to_string(), "server error 200045: banned");
        assert!(!Error::new(ErrorKind::Timeout, "t").is_server_code(20003));
    }
}
