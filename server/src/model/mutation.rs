//! Every change to the state, as a value.
//!
//! The engine never touches the maps directly: each of its operations
//! decides on mutations and hands them to the commit step, which applies
//! them to the state, logs them when durability is on, and turns them into
//! room events when someone listens. Every mutation is an idempotent assignment, so replaying a log
//! over a fuzzy snapshot rebuilds the same state.

use serde::{Deserialize, Serialize};

use super::{BanScope, MemberRole, Mode, ParticipantRecord, ReleaseReason, Schedule};

/// One state change, with everything needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Mutation {
    /// Make `uids` members of room `rid` (joining at `at_ms`).
    AddMembers {
        pid: i64,
        rid: i64,
        uids: Vec<i64>,
        #[serde(default)]
        at_ms: i64,
    },
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
    /// Add members with roles, or change the role of existing ones (a new
    /// role resets the mode to the role's default).
    UpsertMembers { pid: i64, rid: i64, members: Vec<MemberRole>, at_ms: i64 },
    /// Set a member's send/receive mode.
    SetMemberMode { pid: i64, rid: i64, uid: i64, mode: Mode },
    /// Replace a scheduled room's window and policies (keeps its begin time
    /// and automatic extension).
    UpdateRoom {
        pid: i64,
        rid: i64,
        valid_from_ms: i64,
        valid_until_ms: i64,
        max_seconds: u32,
        release_threshold: u32,
        idle_seconds: u32,
    },
    /// Restore members' recorded roles, modes and join times (snapshots).
    RestoreParticipants { pid: i64, rid: i64, participants: Vec<ParticipantRecord> },
    /// Every login token of user `uid` issued at or before `at_ms` stops
    /// working (`removetoken`). New variants go last: the log stores the
    /// variant's position.
    RevokeTokens { pid: i64, uid: i64, at_ms: i64 },
}

impl Mutation {
    /// The room the mutation is about (`rid` 0 for project-wide bans).
    pub(crate) fn room(&self) -> (i64, i64) {
        match *self {
            Self::AddMembers { pid, rid, .. }
            | Self::RemoveMembers { pid, rid, .. }
            | Self::SetRoomInfo { pid, rid, .. }
            | Self::CreateRoom { pid, rid, .. }
            | Self::RoomBegan { pid, rid, .. }
            | Self::ExtendRoom { pid, rid, .. }
            | Self::ReleaseRoom { pid, rid, .. }
            | Self::UpsertMembers { pid, rid, .. }
            | Self::SetMemberMode { pid, rid, .. }
            | Self::UpdateRoom { pid, rid, .. }
            | Self::RestoreParticipants { pid, rid, .. } => (pid, rid),
            Self::AddBan { pid, scope, .. } | Self::RemoveBan { pid, scope, .. } => (pid, scope.rid()),
            Self::RevokeTokens { pid, .. } => (pid, 0),
        }
    }
}
