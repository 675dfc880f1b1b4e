//! Logging in and out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::methods::{Empty, Method};

/// `auth {pid, uid, token, version?, …}` → `{ok}`: the first quest on a
/// client connection. A good token answers `{ok: true}`; a bad, expired or
/// revoked one answers `{ok: false}` with status 0 (not an error), as the
/// SDKs expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    /// Project id.
    pub pid: i64,
    /// User id.
    pub uid: i64,
    /// The token the project's backend got with `gettoken`.
    pub token: String,
    /// The SDK's version, e.g. `"C#-2.7.0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Auto-translation target language (accepted, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Session attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<BTreeMap<String, String>>,
    /// `"<brand>-<model>"` (Android).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl Method for Auth {
    const NAME: &'static str = "auth";
    type Answer = AuthAnswer;
}

/// The answer of `auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthAnswer {
    /// Whether the token was accepted (a real boolean on the wire).
    pub ok: bool,
}

/// `bye {}` → `{}`: ends the session; the client closes after the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bye {}

impl Method for Bye {
    const NAME: &'static str = "bye";
    type Answer = Empty;
}
