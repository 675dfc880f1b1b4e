//! History as a logged-in user reads it: the user is implicit. `getmsg` and
//! `delmsg` have the server API's shape and are re-exported from there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::methods::{GetRoomMsgCount as ServerGetRoomMsgCount, HistoryPage, HistoryRow, MessageCount, Method};

/// `getroommsg {rid, desc, num, begin?, end?, lastid?, mtypes?}` →
/// [`HistoryPage`]: a page of room `rid`'s history (the user must be in the
/// room). The paging rules are those of the server API's
/// [`GetRoomMsg`](crate::methods::GetRoomMsg).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRoomMsg {
    /// Room id.
    pub rid: i64,
    /// Newest first.
    pub desc: bool,
    /// Rows wanted, 1 to 20.
    pub num: i64,
    /// Oldest `mtime` wanted (ms, inclusive; 0 = unbounded).
    #[serde(default)]
    pub begin: i64,
    /// Newest `mtime` wanted (ms, inclusive; 0 = now).
    #[serde(default)]
    pub end: i64,
    /// The previous page's cursor, exclusive (0 = first page).
    #[serde(default)]
    pub lastid: i64,
    /// Only these mtypes (absent or empty = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtypes: Option<Vec<i64>>,
}

impl Method for GetRoomMsg {
    const NAME: &'static str = "getroommsg";
    type Answer = HistoryPage;
}

/// `getroommsgcount {rid, begin, end, mtypes?}` → `{count}` (the user must
/// be in the room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRoomMsgCount {
    /// Room id.
    pub rid: i64,
    /// Oldest `mtime` counted (0 = unbounded).
    #[serde(default)]
    pub begin: i64,
    /// Newest `mtime` counted (0 = now).
    #[serde(default)]
    pub end: i64,
    /// Only these mtypes (absent or empty = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtypes: Option<Vec<i64>>,
}

impl Method for GetRoomMsgCount {
    const NAME: &'static str = ServerGetRoomMsgCount::NAME;
    type Answer = MessageCount;
}

/// `getuserroomsandlastmsg {mtypes?}` → `{rooms: {"<rid>": row}}`: the
/// user's rooms, each with its newest message (of `mtypes`, if given).
/// Rooms with no such message are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetUserRoomsAndLastMsg {
    /// Only these mtypes (absent or empty = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtypes: Option<Vec<i64>>,
}

impl Method for GetUserRoomsAndLastMsg {
    const NAME: &'static str = "getuserroomsandlastmsg";
    type Answer = RoomsLastMessage;
}

/// The answer of `getuserroomsandlastmsg`: keys are decimal room ids (as in
/// `getroomcount`'s `cn`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomsLastMessage {
    /// Room id → its newest row.
    pub rooms: BTreeMap<String, HistoryRow>,
}
