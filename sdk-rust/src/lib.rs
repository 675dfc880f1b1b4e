//! The Rust client SDK for the RTM room server.
//!
//! Backends manage rooms through three interchangeable APIs over one
//! pipelined connection:
//!
//! - **async**: [`RtmServerClient`], a cheap `Clone` handle; every server
//!   method is an `async fn`;
//! - **callback**: every method has a `*_with_callback` form that returns at
//!   once and calls a closure with the result, with no async code needed by
//!   the caller;
//! - **blocking**: [`blocking::RtmServerClient`], for a plain `fn main`.
//!
//! Calls are signed with the project's secret (a unique salt per call), time
//! out after the quest timeout (30 s by default, per handle with
//! [`RtmServerClient::with_timeout`]), and fail with one [`Error`] type whose
//! [`kind`](Error::kind) tells server answers, timeouts, connection and
//! protocol failures apart.
//!
//! # Quick start (async)
//!
//! ```no_run
//! use rtm_sdk::{ClientOptions, RtmServerClient};
//!
//! # async fn demo() -> Result<(), rtm_sdk::Error> {
//! let options = ClientOptions::new("127.0.0.1:13315", 11000001, "demo-secret-for-local-use-only");
//! let client = RtmServerClient::connect(options).await?;
//! client.add_room_member(7001, 1001).await?;
//! let counts = client.get_room_count(&[7001]).await?;
//! assert_eq!(counts[&7001], 1);
//! # Ok(()) }
//! ```
//!
//! # Callback
//!
//! ```no_run
//! # fn demo(client: rtm_sdk::blocking::RtmServerClient) {
//! client.is_ban_of_room_with_callback(7001, 1001, |result| match result {
//!     Ok(banned) => println!("banned: {banned}"),
//!     Err(e) => eprintln!("failed: {e}"),
//! });
//! # }
//! ```
//!
//! # Blocking
//!
//! ```no_run
//! use rtm_sdk::{blocking, ClientOptions};
//!
//! let client = blocking::RtmServerClient::connect(ClientOptions::new(
//!     "127.0.0.1:13315", 11000001, "demo-secret-for-local-use-only",
//! ))?;
//! client.set_room_info(7001, Some("public"), None)?;
//! println!("{:?}", client.get_room_info(7001)?);
//! # Ok::<(), rtm_sdk::Error>(())
//! ```
//!
//! # Room events
//!
//! Listen to rooms, users and event names, then take the events from a
//! callback, a stream, or both. The client remembers what it listens to
//! and restores it after a reconnect; events emitted while it is
//! disconnected are lost (at most once).
//!
//! ```no_run
//! use rtm_sdk::{ClientOptions, ListenFilter, RoomEvent, RtmServerClient};
//!
//! # async fn demo(options: ClientOptions) -> Result<(), rtm_sdk::Error> {
//! let options = options.on_room_event(|event| println!("{} in room {}", event.name, event.rid));
//! let client = RtmServerClient::connect(options).await?;
//! let mut events = client.room_events();
//! client.add_listen(&ListenFilter::new().rooms([7001]).events([RoomEvent::MEMBER_JOINED])).await?;
//! while let Some(Ok(event)) = events.next().await {
//!     println!("{} joined as {:?}", event.uid, event.role());
//! }
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! ```no_run
//! # async fn demo(client: rtm_sdk::RtmServerClient) {
//! use rtm_sdk::{codes, ErrorKind};
//! match client.add_room_members(7001, &[]).await {
//!     Err(e) if e.is_server_code(codes::EMPTY_PARAMETER) => eprintln!("nothing to add"),
//!     Err(e) if e.kind() == ErrorKind::Timeout => eprintln!("timed out"),
//!     Err(e) => eprintln!("{e}"),
//!     Ok(uids) => println!("added {uids:?}"),
//! }
//! # }
//! ```
//!
//! # Layout
//!
//! The modules form layers, each using only the layers below it (so the
//! module graph has no cycle; `tests/sdk/layers.rs` checks it, and "SDK
//! internals" in `docs/architecture.md` draws it):
//!
//! - the server API: [`RtmServerClient`] (`client.rs`, which signs with
//!   the project's secret), the typed methods generated for both clients
//!   (`methods.rs`), [`blocking`], [`ClientOptions`] (`options.rs`), what
//!   the client listens to and its restore after a reconnect (`listen.rs`:
//!   [`ListenFilter`], [`ListenState`]), and room events
//!   (`room_events.rs`: [`RoomEvent`], [`RoomEventStream`], [`Lagged`]);
//! - `connection.rs`: the connection task (an actor) and its handle; it
//!   owns the socket, seqs, timeouts, pushes, keep-alive and reconnection,
//!   and sends any encoded quest, signed or not;
//! - `connector.rs`: TCP, TLS (or `*key` encryption, `encryption.rs`), the on-connect hook run on every new
//!   connection before any call, and the reconnection backoff;
//! - `quest.rs`: encoding, signing and reading answers, with no I/O;
//! - shared types: [`Error`], [`ErrorKind`], [`codes`];
//!   [`ConnectionEvent`]; [`PushQuest`].

#![warn(missing_docs)]
#![deny(missing_docs)]

// The layers, lowest first (kept apart so that rustfmt keeps the order).
// Shared types, and quests with no I/O:
mod error;
mod event;
mod push;
mod quest;

// Opening connections:
mod connector;
mod encryption;

// The connection actor:
mod connection;

// The server API:
mod listen;
mod room_events;

mod options;

mod client;
mod end_user;
mod history;
mod history_pager;

pub mod blocking;

mod end_user_methods;
mod methods;

pub use client::RtmServerClient;
pub use end_user::{MessageKind, RoomMessage, RoomMessages, RtmClient, RtmClientOptions};
pub use error::{codes, Error, ErrorKind};
pub use event::ConnectionEvent;
pub use history::{HistoryPage, HistoryQuery, HistoryRow, MessageInfo};
pub use history_pager::RoomHistory;
pub use listen::{ListenFilter, ListenState};
pub use methods::{
    CreateRoom, CreatedRoom, ExtendedRoom, MemberSpec, Mode, RecordingFile, RecordingStatus, RecordingStopped, Role,
    RoomDetails, RoomInfo, RoomMember, RoomMemberPage, RoomPage, StartPlayback, StartRecording, UpdateRoom,
};
pub use options::ClientOptions;
pub use push::PushQuest;
pub use room_events::{Lagged, RoomEvent, RoomEventStream};
pub use rtm_protocol as protocol;
pub use rtm_protocol::client::MessageBody;
pub use rtm_protocol::encryption::{Bits, Mode as EncryptionMode};
