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
//! From the socket down to the data; each module depends only on those
//! below it (a test, `tests/server/layering.rs`, fails on any import cycle).
//!
//! - [`server`]: [`bind`], [`run`] and [`serve`]: one accept loop per gate
//!   endpoint (plain or TLS), each gate's connection cap, graceful shutdown
//!   (`CancellationToken` + `TaskTracker`).
//! - `session`: a session per connection and its pump, the read → decode →
//!   dispatch → batched-write loop over any byte stream; the `Gate` trait
//!   the pump drives.
//! - `gate`: the gates. `ServerGate` is the RTM server API: per-quest
//!   signatures (`auth`: signature, time window, rate limit, replay cache)
//!   and the methods of `cmd`.
//! - `cmd`: one file per server-API method: parse, one engine call, answer.
//! - `engine`: the domain operations (admit, remove, create, extend, ban,
//!   …), each atomic under its room's lock, and the deadline tasks.
//! - `cluster`: the Redis Cluster of the `redis` engine: routing and
//!   failover retries, the function library, partitions and their hash
//!   tags, the sharded subscribers and partition followers.
//! - `commit`: applies each change to the state, appends it to the log, and
//!   describes it as room events.
//! - `state`: the embedded store: sharded rooms, members, schedules and
//!   their deadline index, bans.
//! - `events`: listener subscriptions, filters, the start-up hold.
//! - `outbox`: a session's bounded queue of pushes.
//! - `model`: the persisted types and `Mutation` (a leaf; no wire types).
//! - [`storage`]: the write-ahead log with group commit, snapshots and
//!   recovery, knowing only `Mutation` and the `Persisted` interface.
//! - [`config`]: the embedded default, TOML file, `RTM_*` and `--set`
//!   overrides; gates × endpoints.
//! - `app`: the context every part shares (config, engine, metrics).
//! - `metrics` and `admin`: Prometheus metrics (a no-op value when off) and
//!   the `/metrics`, `/healthz`, `/readyz` HTTP listener.
//! - `tls`: the certificate of the TLS endpoints, reloaded on SIGHUP.
//!
//! See `docs/architecture.md` for how the pieces fit.

mod admin;
mod app;
mod auth;
mod clock;
mod cluster;
mod cmd;
mod commit;
pub mod config;
mod engine;
mod error;
mod events;
mod gate;
mod history;
mod http;
mod metrics;
mod model;
mod outbox;
mod presence;
mod recording;
mod recording_api;
pub mod server;
mod session;
mod state;
pub mod storage;
mod tls;
mod web;

pub use config::Config;
pub use error::ServerError;
pub use server::{bind, run, serve, Listeners};
pub use session::encrypted::{write_key_pair, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE};
