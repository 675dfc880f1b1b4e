//! Where a ban applies, and a ban's identity.

use serde::{Deserialize, Serialize};

/// Where a ban applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum BanScope {
    /// One room.
    Room(i64),
    /// Every room of the project.
    AllRooms,
    /// The project block list.
    ProjectBlack,
}

impl BanScope {
    /// The room of a room ban; 0 otherwise.
    pub(crate) fn rid(self) -> i64 {
        match self {
            Self::Room(rid) => rid,
            Self::AllRooms | Self::ProjectBlack => 0,
        }
    }

    /// The name events use: `room`, `all_rooms` or `project`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Room(_) => "room",
            Self::AllRooms => "all_rooms",
            Self::ProjectBlack => "project",
        }
    }
}

/// One ban's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct BanKey {
    pub(crate) pid: i64,
    pub(crate) scope: BanScope,
    pub(crate) uid: i64,
}
