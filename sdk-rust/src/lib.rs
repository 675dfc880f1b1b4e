//! The Rust client SDK for the RTM room server (work in progress: see the
//! issue tracker). It will offer async, callback and blocking clients over
//! [`rtm_protocol`].

pub use rtm_protocol as protocol;
