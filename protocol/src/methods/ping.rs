//! The built-in `*ping` keep-alive.

use serde::{Deserialize, Serialize};

use super::Method;

/// `*ping {}` → `{ts}`. Needs no authentication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {}

impl Method for Ping {
    const NAME: &'static str = "*ping";
    type Answer = PingAnswer;
}

/// The server's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingAnswer {
    /// Server UTC time in milliseconds.
    pub ts: i64,
}
