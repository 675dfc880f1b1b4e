//! What every part of a running server shares: its configuration, the
//! engine, the metrics and whether it accepts new connections.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::auth::Tokens;
use crate::config::Config;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::recording::Recordings;

/// The application context, behind one `Arc`.
pub(crate) struct App {
    pub(crate) config: Config,
    pub(crate) engine: Engine,
    /// Counts nothing when the metrics listener is off.
    pub(crate) metrics: Metrics,
    /// Login tokens: issued by the server gate, checked by the client gate.
    pub(crate) tokens: Arc<Tokens>,
    /// Room recordings.
    pub(crate) recordings: Recordings,
    /// Whether new connections are accepted (`/readyz`).
    pub(crate) ready: AtomicBool,
}

impl crate::recording::Host for App {
    fn recordings(&self) -> &Recordings {
        &self.recordings
    }

    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
