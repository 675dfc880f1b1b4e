//! Gates: how a connection is authorised and which methods it may call.
//!
//! A gate is a set of methods plus an authorisation rule. The pump
//! (`session/pump.rs`) owns the connection and hands every quest to its
//! gate; the gate checks it, runs it and writes its answer. Gates know
//! nothing of sockets, TLS or framing, so every gate works over every
//! transport.
//!
//! - [`ServerGate`]: the RTM server API. Every quest carries
//!   `pid`/`sign`/`salt`/`ts` and is checked on its own (`auth/`).
//! - The client gate (end users who log in once with `auth`) comes next.

mod server_api;

use bytes::BytesMut;
use rtm_protocol::Quest;

pub(crate) use server_api::ServerGate;

use crate::error::RtmError;
use crate::session::Session;

/// A set of methods and the rule that authorises them.
pub(crate) trait Gate: Send + Sync + 'static {
    /// Runs one quest for `session`. A twoway quest's successful answer is
    /// written into `out`; an error comes back for the pump to answer.
    /// While `stopping`, quests are refused with 20014.
    fn execute(&self, session: &mut Session, quest: &Quest, stopping: bool, out: &mut BytesMut)
        -> Result<(), RtmError>;
}
