//! Room bans: a mute in one room, or in every room of the project.

use serde::{Deserialize, Serialize};

use super::{Empty, Method, OkAnswer};

/// `addroomban {rid?, uid, btime}` → `{}`.
///
/// `rid` absent or ≤ 0 bans the user in every room of the project; `btime`
/// is the duration in seconds, ≤ 0 for a permanent ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddRoomBan {
    /// Room id, or `None` for every room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<i64>,
    /// User id.
    pub uid: i64,
    /// Duration in seconds; ≤ 0 means permanent.
    pub btime: i64,
}

impl Method for AddRoomBan {
    const NAME: &'static str = "addroomban";
    type Answer = Empty;
}

/// `removeroomban {rid?, uid}` → `{}`; `rid` absent or ≤ 0 lifts the
/// all-rooms ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveRoomBan {
    /// Room id, or `None` for the all-rooms ban.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<i64>,
    /// User id.
    pub uid: i64,
}

impl Method for RemoveRoomBan {
    const NAME: &'static str = "removeroomban";
    type Answer = Empty;
}

/// `isbanofroom {rid, uid}` → `{ok}`: true if a ban in this room or in every
/// room is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsBanOfRoom {
    /// Room id.
    pub rid: i64,
    /// User id.
    pub uid: i64,
}

impl Method for IsBanOfRoom {
    const NAME: &'static str = "isbanofroom";
    type Answer = OkAnswer;
}
