//! SDK tests: against the real server (started in-process on its own
//! runtime thread) and against a scripted fake server for the faults.
#![allow(unreachable_pub)]

mod against_server;
mod blocking;
mod callbacks;
mod concurrency;
mod end_user;
mod fake_server;
mod layers;
mod support;
mod tls;
