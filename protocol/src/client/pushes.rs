//! What the gate sends to a client unasked.

use serde::{Deserialize, Serialize};

use super::MessageBody;
use crate::methods::{Empty, Method};

/// `pushroommsg {from, rid, mid, mtype, msg, attrs, mtime}`, twoway,
/// answered `{}`: a message said in a room the user is in. Backends that
/// listen to the room get the same push, with chat as plain text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRoomMsg {
    /// Sender uid.
    pub from: i64,
    /// Room id.
    pub rid: i64,
    /// The sender's message id.
    pub mid: i64,
    /// Message type.
    pub mtype: i64,
    /// The message; for a client, chat (mtype 30) is a [`super::ChatBody`] map.
    pub msg: MessageBody,
    /// Attributes.
    pub attrs: String,
    /// When the server accepted it, Unix milliseconds.
    pub mtime: i64,
}

impl Method for PushRoomMsg {
    const NAME: &'static str = "pushroommsg";
    type Answer = Empty;
}

/// `kickout {}`, oneway: the session is closed (another login, the server
/// API's `kickout`, or the project block list). The SDK does not relogin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kickout {}

impl Method for Kickout {
    const NAME: &'static str = "kickout";
    type Answer = Empty;
}

/// `kickoutroom {rid}`, oneway: the user is no longer in room `rid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KickoutRoom {
    /// Room id.
    pub rid: i64,
}

impl Method for KickoutRoom {
    const NAME: &'static str = "kickoutroom";
    type Answer = Empty;
}

/// `ping {}` → `{}`, from the gate: the SDKs drop a link that has not been
/// pinged for 60 s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerPing {}

impl Method for ServerPing {
    const NAME: &'static str = "ping";
    type Answer = Empty;
}
