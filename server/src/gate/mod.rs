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
//! - [`ClientGate`]: end users' RTM client SDKs. The first quest is `auth`
//!   with a token from `gettoken`; the session is that user from then on.

mod client;
mod server_api;

use bytes::BytesMut;
use rtm_protocol::{write_answer, Encoding, ErrorCode};

pub(crate) use client::ClientGate;
pub(crate) use server_api::ServerGate;

use crate::cmd::Reply;
use crate::error::RtmError;
use crate::metrics::Metrics;

/// A quest's metrics: started before it runs, finished with its result.
/// Plain calls around the gate's own `.await` rather than a wrapping
/// future: every layer of future is built and moved for every quest.
struct Counted {
    started: Option<std::time::Instant>,
}

impl Counted {
    fn start(metrics: &Metrics) -> Self {
        Self { started: metrics.is_on().then(std::time::Instant::now) }
    }

    /// Counts the quest under method slot `slot` (`None`: an unknown method).
    fn finish(self, metrics: &Metrics, slot: Option<usize>, result: &Result<(), RtmError>) {
        if let Some(started) = self.started {
            metrics.quest(slot, result.as_ref().err().map(|e| e.code), started.elapsed().as_secs_f64());
        }
    }
}

/// 20014 while the server is stopping.
fn stopping_error() -> RtmError {
    RtmError::new(ErrorCode::CoreServerStopping, "server is stopping")
}

/// 20004 for a method the gate does not have (the FPNN servers' wording).
fn unknown_method(method: &[u8]) -> RtmError {
    RtmError::new(ErrorCode::CoreUnknownMethod, format!("Unknow method:{}", String::from_utf8_lossy(method)))
}

/// Writes a twoway quest's successful answer, mirroring its version and encoding.
pub(crate) struct AnswerTo<'a> {
    pub(crate) out: &'a mut BytesMut,
    pub(crate) version: u8,
    pub(crate) encoding: Encoding,
    pub(crate) seq: u32,
}

impl Reply for AnswerTo<'_> {
    type Done = ();
    fn ok<T: serde::Serialize>(self, answer: &T) {
        if let Err(e) = write_answer(self.out, self.version, self.encoding, self.seq, 0, answer) {
            let err = RtmError::new(ErrorCode::CoreEncoding, format!("answer encoding failed: {e}"));
            let _ = write_answer(self.out, self.version, self.encoding, self.seq, 1, &err.to_answer());
        }
    }
}

/// Oneway quests are executed but never answered.
pub(crate) struct Discard;

impl Reply for Discard {
    type Done = ();
    fn ok<T: serde::Serialize>(self, _answer: &T) {}
}
