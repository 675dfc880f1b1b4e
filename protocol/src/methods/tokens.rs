//! Client login tokens and sessions, from the backend's side.

use serde::{Deserialize, Serialize};

use super::{Empty, Method};

/// `gettoken {uid, version?}` → `{token}`: a token user `uid` logs in to the
/// client gate with. Reusable for reconnects until it expires or is revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetToken {
    /// User id.
    pub uid: i64,
    /// The calling SDK's version (accepted, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Method for GetToken {
    const NAME: &'static str = "gettoken";
    type Answer = Token;
}

/// The answer of `gettoken`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Opaque to clients.
    pub token: String,
}

/// `removetoken {uid}` → `{}`: every token issued to `uid` so far stops
/// working (sessions already logged in stay; see `kickout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveToken {
    /// User id.
    pub uid: i64,
}

impl Method for RemoveToken {
    const NAME: &'static str = "removetoken";
    type Answer = Empty;
}

/// `kickout {uid}` → `{}`: every session of `uid` gets the oneway `kickout`
/// and is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kickout {
    /// User id.
    pub uid: i64,
    /// A client endpoint, to kick one session of several (accepted, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce: Option<String>,
}

impl Method for Kickout {
    const NAME: &'static str = "kickout";
    type Answer = Empty;
}
