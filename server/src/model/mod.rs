//! The server's own data types: what a room, a member and a ban are, and
//! [`Mutation`], the one form every change takes. A leaf: it depends on no
//! other module of the server and not on `rtm_protocol`, because the write-
//! ahead log and snapshots persist these types. A change of the wire must
//! never change the data directory by accident; converting between wire and
//! model happens at the edge (`cmd/`).

mod ban;
mod delta;
mod event;
mod member;
mod message;
mod mutation;
mod room;

pub(crate) use ban::{BanKey, BanScope};
pub(crate) use delta::{Delta, MemberChange, MemberChangeKind};
pub(crate) use event::{Event, EventName};
pub(crate) use member::{MemberRole, Mode, Participant, ParticipantRecord, Participants, Role};
pub(crate) use message::{Body, RoomMessage, CHAT_MTYPE};
pub(crate) use mutation::Mutation;
pub(crate) use room::{ReleaseReason, Schedule, DEFAULT_WINDOW_SECS};

/// A user of a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct UserKey {
    pub(crate) pid: i64,
    pub(crate) uid: i64,
}

/// A room's identity: rooms of different projects never meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RoomKey {
    pub(crate) pid: i64,
    pub(crate) rid: i64,
}
