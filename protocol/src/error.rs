//! Errors of the protocol layer, and the numeric error codes that travel in
//! error answers.

use serde::{Deserialize, Serialize};

/// A frame that cannot be decoded. The connection that sent it must be
/// closed: there is no way to find the next frame boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The first four bytes are not `FPNN`.
    #[error("bad magic {0:02x?}, expected \"FPNN\"")]
    BadMagic([u8; 4]),
    /// The flag byte does not have exactly one of 0x80 (msgpack) and 0x40 (JSON).
    #[error("bad flag byte 0x{0:02x}: exactly one of 0x80 (msgpack) and 0x40 (json) must be set")]
    BadFlag(u8),
    /// The mtype byte is not 0, 1 or 2.
    #[error("bad message type {0}: expected 0 (oneway), 1 (twoway) or 2 (answer)")]
    BadMessageType(u8),
    /// A quest whose method-name length is 0.
    #[error("quest with an empty method name")]
    EmptyMethod,
    /// The frame is longer than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced frame length, header included.
        len: u64,
        /// Configured maximum.
        max: usize,
    },
}

/// A frame that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Method names are 1 to 255 bytes.
    #[error("method name must be 1 to 255 bytes, got {0}")]
    MethodLength(usize),
    /// The payload does not fit the 32-bit length field.
    #[error("payload of {0} bytes does not fit in a frame")]
    PayloadTooLarge(usize),
    /// Serialising the payload failed.
    #[error("payload encoding failed: {0}")]
    Payload(String),
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, )*) => {
        /// FPNN framework (1xxxx–3xxxx) and RTM (2000xx) error codes, as sent in
        /// the `code` field of an error answer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $name = $value, )*
        }

        impl ErrorCode {
            /// Every known code.
            pub const ALL: &'static [Self] = &[$(Self::$name,)*];

            /// The code for a number, if it is a known one.
            pub const fn from_code(code: i64) -> Option<Self> {
                match code {
                    $( $value => Some(Self::$name), )*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    /// Unknown codec error.
    ProtoUnknownError = 10001,
    /// Unsupported protocol, format or encoding.
    ProtoNotSupported = 10002,
    /// Invalid packet.
    ProtoInvalidPackage = 10003,
    /// JSON conversion failed.
    ProtoJsonConvert = 10004,
    /// A map key is not a string.
    ProtoStringKey = 10005,
    /// The payload root is not a map.
    ProtoMapValue = 10006,
    /// Bad message type.
    ProtoMethodType = 10007,
    /// Unsupported protocol type.
    ProtoProtoType = 10008,
    /// A required parameter is missing.
    ProtoKeyNotFound = 10009,
    /// A parameter has the wrong type.
    ProtoTypeConvert = 10010,
    /// Invalid file signature.
    ProtoFileSign = 10011,
    /// File does not exist.
    ProtoFileNotExist = 10012,
    /// Unknown error.
    CoreUnknownError = 20001,
    /// Connection closed (client-side).
    CoreConnectionClosed = 20002,
    /// Timeout (client-side).
    CoreTimeout = 20003,
    /// Unknown method.
    CoreUnknownMethod = 20004,
    /// Encoding error.
    CoreEncoding = 20005,
    /// Decoding error.
    CoreDecoding = 20006,
    /// Send error.
    CoreSendError = 20007,
    /// Receive error.
    CoreRecvError = 20008,
    /// Invalid packet.
    CoreInvalidPackage = 20009,
    /// HTTP error.
    CoreHttpError = 20010,
    /// The server's work queue is full.
    CoreWorkQueueFull = 20011,
    /// Invalid connection (client-side).
    CoreInvalidConnection = 20012,
    /// Forbidden.
    CoreForbidden = 20013,
    /// The server is stopping.
    CoreServerStopping = 20014,
    /// Cancelled.
    CoreCancelled = 20015,
    /// Compression error.
    ZipCompress = 30001,
    /// Decompression error.
    ZipDecompress = 30002,
    /// Invalid pid or uid.
    InvalidPidOrUid = 200001,
    /// Invalid pid or signature.
    InvalidPidOrSign = 200002,
    /// Invalid file, sign or token.
    InvalidFileOrSignOrToken = 200003,
    /// File attrs must contain sign and ext.
    AttrsWithoutSignOrExt = 200004,
    /// Invalid message type.
    InvalidMtype = 200005,
    /// The same signed quest was seen before (a replay).
    SameSign = 200006,
    /// Invalid file message type.
    InvalidFileMtype = 200007,
    /// The quest's `ts` is outside the accepted window.
    InvalidServerTime = 200008,
    /// Rate limited.
    FrequencyLimited = 200010,
    /// Flood limited.
    RefreshScreenLimited = 200011,
    /// Kicked out by own login.
    KickoutSelf = 200012,
    /// Method forbidden.
    ForbiddenMethod = 200020,
    /// Permission denied.
    PermissionDenied = 200021,
    /// Unauthorised.
    Unauthorized = 200022,
    /// Already authenticated.
    DuplicatedAuth = 200023,
    /// Authentication denied.
    AuthDenied = 200024,
    /// Admin ids cannot log in as clients.
    AdminLogin = 200025,
    /// Admin only.
    AdminOnly = 200026,
    /// Invalid auth token.
    InvalidAuthToken = 200027,
    /// Message, info or attrs too large.
    LargeMessageOrAttrs = 200030,
    /// File or attrs too large.
    LargeFileOrAttrs = 200031,
    /// A list parameter has too many items.
    TooManyItemsInParameters = 200032,
    /// A list parameter is empty.
    EmptyParameter = 200033,
    /// A parameter has an invalid value.
    InvalidParameter = 200034,
    /// Not in the room.
    NotInRoom = 200040,
    /// Not a group member.
    NotGroupMember = 200041,
    /// Group member limit reached.
    MaxGroupMemberCount = 200042,
    /// Not a friend.
    NotFriend = 200043,
    /// Banned in the group.
    BannedInGroup = 200044,
    /// Banned in the room.
    BannedInRoom = 200045,
    /// The group is empty.
    EmptyGroup = 200046,
    /// The user is in too many rooms.
    MaxRoomCount = 200047,
    /// Friend limit reached.
    MaxFriendCount = 200048,
    /// Blocked user.
    BlockedUser = 200049,
    /// Unsupported translation language.
    UnsupportedLanguage = 200050,
    /// Empty translation text.
    EmptyTranslation = 200051,
    /// Cannot send to self.
    SendToSelf = 200052,
    /// Duplicated message id.
    DuplicatedMid = 200053,
    /// Sensitive words matched.
    SensitiveWords = 200054,
    /// Not online.
    NotOnline = 200055,
    /// Translation error.
    TranslationError = 200056,
    /// Profanity stop.
    ProfanityStop = 200057,
    /// The feature must be enabled in the console.
    NoConfigInConsole = 200060,
    /// Unsupported transcribe type.
    UnsupportedTranscribeType = 200061,
    /// Message not found.
    MessageNotFound = 200070,
    /// A recording already runs with this resource id (the seed's 7 / 53).
    RecordingInProgress = 200080,
    /// The resource id is unknown, expired (5 minutes) or for another room (the seed's 433 / 1001 / 1003).
    RecordingResourceInvalid = 200081,
    /// No such recording (the seed's 404).
    RecordingNotFound = 200082,
    /// The recording was stopped already (the seed's 49).
    RecordingStopped = 200083,
    /// The project made more than 10 recording requests in a second.
    RecordingRateLimited = 200084,
    /// Recording needs message history, which is off on this server.
    RecordingUnavailable = 200085,
    /// The room is not playing anything (`stopplayback`).
    PlaybackNotFound = 200086,
    /// The room is playing already (`startplayback`).
    PlaybackInProgress = 200087,
    /// Unknown RTM error.
    RtmUnknownError = 200999,
}

impl ErrorCode {
    /// The numeric code.
    pub const fn code(self) -> i64 {
        self as i64
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({})", self, self.code())
    }
}

/// The payload of an error answer: `{code, ex}`, sent with a non-zero status.
///
/// Every client SDK reads both keys, and the Go SDK panics if either is
/// missing, so both are always written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    /// The numeric error code.
    pub code: i64,
    /// A human-readable explanation.
    pub ex: String,
}

impl ErrorAnswer {
    /// Builds an error answer from a known code.
    pub fn new(code: ErrorCode, ex: impl Into<String>) -> Self {
        Self { code: code.code(), ex: ex.into() }
    }
}

/// Why a payload could not be read as the parameters of a method.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not valid msgpack or JSON.
    #[error("payload is not valid: {0}")]
    Malformed(String),
    /// The root value is not a map.
    #[error("payload root must be a map, got {0}")]
    NotAMap(&'static str),
    /// A required key is absent.
    #[error("missing parameter '{key}'")]
    Missing {
        /// Dotted path of the key.
        key: String,
    },
    /// A key's value has the wrong type or an out-of-range value.
    #[error("parameter '{key}' is invalid: {reason}")]
    Invalid {
        /// Dotted path of the key (empty at the root).
        key: String,
        /// What was wrong.
        reason: String,
    },
}

impl PayloadError {
    /// The error code an answer carries for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) => ErrorCode::ProtoInvalidPackage,
            Self::NotAMap(_) => ErrorCode::ProtoMapValue,
            Self::Missing { .. } => ErrorCode::ProtoKeyNotFound,
            Self::Invalid { .. } => ErrorCode::ProtoTypeConvert,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_their_reference_values() {
        assert_eq!(ErrorCode::ProtoKeyNotFound.code(), 10009);
        assert_eq!(ErrorCode::ProtoTypeConvert.code(), 10010);
        assert_eq!(ErrorCode::CoreUnknownMethod.code(), 20004);
        assert_eq!(ErrorCode::CoreServerStopping.code(), 20014);
        assert_eq!(ErrorCode::InvalidPidOrSign.code(), 200002);
        assert_eq!(ErrorCode::SameSign.code(), 200006);
        assert_eq!(ErrorCode::InvalidServerTime.code(), 200008);
        assert_eq!(ErrorCode::FrequencyLimited.code(), 200010);
        assert_eq!(ErrorCode::LargeMessageOrAttrs.code(), 200030);
        assert_eq!(ErrorCode::TooManyItemsInParameters.code(), 200032);
        assert_eq!(ErrorCode::EmptyParameter.code(), 200033);
        assert_eq!(ErrorCode::BannedInRoom.code(), 200045);
        assert_eq!(ErrorCode::RtmUnknownError.code(), 200999);
    }

    #[test]
    fn from_code_round_trips_every_code() {
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
        }
        assert_eq!(ErrorCode::from_code(42), None);
    }
}
