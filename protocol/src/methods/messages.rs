//! Sending messages from the backend.

use serde::{Deserialize, Serialize};

use super::Method;
use crate::client::{MessageBody, SentMessage};

/// `sendroommsg {mtype, from, rid, mid, msg, attrs}` → `{mtime}`: the backend
/// says `msg` in room `rid` as user `from` (any uid, a system uid
/// included; it need not be a member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRoomMsg {
    /// Message type.
    pub mtype: i64,
    /// Sender uid.
    pub from: i64,
    /// Room id.
    pub rid: i64,
    /// Message id, unique per sender; a retry reuses it.
    pub mid: i64,
    /// The message, str or bin.
    pub msg: MessageBody,
    /// Attributes.
    #[serde(default)]
    pub attrs: String,
}

impl Method for SendRoomMsg {
    const NAME: &'static str = "sendroommsg";
    type Answer = SentMessage;
}
