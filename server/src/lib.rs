//! The RTM room server.
//!
//! Backends manage game and chat rooms through the RTM server API, spoken
//! over FPNN (see the `rtm-protocol` crate). This library is the whole
//! server; the `rtm-server` binary only parses flags, sets up logging and
//! calls [`run`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), rtm_server::ServerError> {
//! let config = rtm_server::Config::default();
//! let listener = rtm_server::bind("127.0.0.1:0".parse().unwrap())?;
//! rtm_server::run(listener, config, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! # Layout
//!
//! - [`server`]: [`bind`], [`run`] and [`serve`]: the accept loops (plain
//!   and TLS), connection limit and graceful shutdown (`CancellationToken` +
//!   `TaskTracker`).
//! - `connection`: one task per connection: decode, execute in order, answer.
//! - `auth`: signature, time window, rate limit, replay cache.
//! - `cmd`: one file per server-API method, dispatched by name.
//! - `state`: sharded rooms and members, bans with a deadline index, and
//!   the `Mutation` type every change goes through.
//! - [`config`]: the embedded default, TOML file, `RTM_*` and `--set` overrides.
//! - `metrics` and `admin`: Prometheus metrics and the `/metrics`, `/healthz`,
//!   `/readyz` HTTP listener.
//! - `tls`: the TLS listener's certificate, reloaded on SIGHUP.
//! - [`storage`]: the write-ahead log with group commit, snapshots and recovery.
//!
//! See `docs/architecture.md` for how the pieces fit.

mod admin;
mod app;
mod auth;
mod clock;
mod cmd;
mod commit;
pub mod config;
mod engine;
mod error;
mod events;
mod gate;
mod metrics;
mod model;
mod outbox;
pub mod server;
mod session;
mod state;
pub mod storage;
mod tls;

pub use config::Config;
pub use error::ServerError;
pub use server::{bind, run, serve, Listeners};
