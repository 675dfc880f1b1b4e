//! Every change to the state, as a value.
//!
//! Commands never touch the maps directly: they build a [`Mutation`] and hand
//! it to [`State::apply`](super::State::apply), which applies it and then
//! passes it to every registered [`ChangeSink`](super::ChangeSink). Durability,
//! events and replication can follow the same stream without a second copy
//! of the logic.

use serde::{Deserialize, Serialize};

use super::bans::BanScope;
use super::schedule::{ReleaseReason, Schedule};

/// One state change, with everything needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Mutation {
    /// Make `uids` members of room `rid`.
    AddMembers { pid: i64, rid: i64, uids: Vec<i64> },
    /// Remove `uids` from room `rid`.
    RemoveMembers { pid: i64, rid: i64, uids: Vec<i64> },
    /// Replace the given parts of a room's info (`None` = unchanged).
    SetRoomInfo { pid: i64, rid: i64, oinfo: Option<String>, pinfo: Option<String> },
    /// Add or replace a ban; `expires_at_ms` is absolute, `None` is permanent.
    AddBan { pid: i64, scope: BanScope, uid: i64, expires_at_ms: Option<i64> },
    /// Lift a ban.
    RemoveBan { pid: i64, scope: BanScope, uid: i64 },
    /// Create a scheduled room (window and policies), with optional info.
    CreateRoom { pid: i64, rid: i64, schedule: Schedule, oinfo: Option<String>, pinfo: Option<String> },
    /// A scheduled room's second member joined at `at_ms`.
    RoomBegan { pid: i64, rid: i64, at_ms: i64 },
    /// Move a scheduled room's end, and set whether it extends itself.
    ExtendRoom { pid: i64, rid: i64, valid_until_ms: i64, auto_extend: bool },
    /// Release a room: members, info and schedule are gone.
    ReleaseRoom { pid: i64, rid: i64, reason: ReleaseReason },
}
