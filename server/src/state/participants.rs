//! Roles, modes and join times of a room's members.
//!
//! Only rooms that need them pay for them: a scheduled room records every
//! member's join time, and an implicit room starts recording once a role is
//! set in it. Members without an entry are attendees in mode 1 who joined
//! at an unknown time.

use std::collections::BTreeMap;

use rtm_protocol::methods::{Mode, Role, RoomMember};
use serde::{Deserialize, Serialize};

/// What is recorded about one member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Participant {
    pub(crate) role: Role,
    pub(crate) mode: Mode,
    /// Unix milliseconds; 0 = unknown.
    pub(crate) joined_at_ms: i64,
}

impl Participant {
    /// A member who just joined with `role`.
    pub(crate) fn joined(role: Role, at_ms: i64) -> Self {
        Self { role, mode: role.default_mode(), joined_at_ms: at_ms }
    }

    pub(crate) fn report(&self, uid: i64) -> RoomMember {
        RoomMember { uid, role: self.role, mode: self.mode, joined_at: self.joined_at_ms }
    }
}

/// Per-member records of one room, keyed by uid.
pub(crate) type Participants = BTreeMap<i64, Participant>;

/// A member's record in a full export (for snapshots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ParticipantRecord {
    pub(crate) uid: i64,
    pub(crate) participant: Participant,
}
