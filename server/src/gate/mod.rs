//! Gates: how a connection is authorised and which methods it may call.
//!
//! A gate is a set of methods plus an authorisation rule: an implementation
//! of [`session::Gate`](crate::session::Gate). The pump (`session/pump.rs`)
//! owns the connection and hands every quest to its gate; the gate checks it, runs it and writes its answer. Gates know
//! nothing of sockets, TLS or framing, so every gate works over every
//! transport.
//!
//! - [`ServerGate`]: the RTM server API. Every quest carries
//!   `pid`/`sign`/`salt`/`ts` and is checked on its own (`auth/`).
//! - The client gate (end users who log in once with `auth`) comes next.

mod server_api;

pub(crate) use server_api::ServerGate;
