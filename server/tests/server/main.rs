#![allow(unreachable_pub)]

//! Integration tests: the real server on 127.0.0.1:0, over real TCP.
//! One test binary with modules keeps link time down.

mod auth;
mod bans;
pub mod client_gate;
mod compat;
mod connections;
mod durability;
mod encryption;
mod errors;
pub mod events;
mod history;
mod layering;
mod lifetimes;
pub mod messaging;
mod observability;
mod paging;
pub mod recording;
mod recording_api;
mod recording_s3;
mod redis_tls;
mod rooms;
mod scale_out;
mod shutdown;
mod support;
pub mod tls;
mod web_chat;
mod websocket;
