//! The load-testing harness for the RTM room server.
//!
//! It speaks FPNN through `rtm-protocol` directly (not the SDK), which
//! costs the least CPU per call, so the harness is not what limits the
//! measurement. Every quest is signed with a unique salt, exactly as a
//! careful client signs it.
//!
//! # Layout
//!
//! - [`workload`]: the operations, random ids, signing.
//! - [`driver`]: connection workers, closed and open loop, pipelining.
//! - [`stats`]: HDR latency histograms, error counts, the report.
//! - [`scenarios`]: `fill`, `connections`, and reading a server's memory.
//! - [`listeners`]: room-event listeners that count what they receive.
//! - [`probe`]: an independent latency check on a plain thread (`--probe`).
//! - [`cpu`]: the harness's own CPU use and run-queue wait.
//! - [`soak`]: a long run at a fixed rate that watches memory and disk.
//! - [`fanout`]: logged-in clients in rooms, room messages sent and received.

pub mod cpu;
pub mod driver;
pub mod fanout;
pub mod listeners;
pub mod probe;
pub mod scenarios;
pub mod secure;
pub mod soak;
pub mod stats;
pub mod workload;
