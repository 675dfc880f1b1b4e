//! Rooms as a logged-in user sees them: the user is implicit.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::methods::{Empty, Method};

/// `enterroom {rid}` → `{}`: the user joins room `rid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterRoom {
    /// Room id.
    pub rid: i64,
}

impl Method for EnterRoom {
    const NAME: &'static str = "enterroom";
    type Answer = Empty;
}

/// `enterrooms {rids}` → `{}`: the user joins every room listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterRooms {
    /// Room ids.
    pub rids: Vec<i64>,
}

impl Method for EnterRooms {
    const NAME: &'static str = "enterrooms";
    type Answer = Empty;
}

/// `leaveroom {rid}` → `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveRoom {
    /// Room id.
    pub rid: i64,
}

impl Method for LeaveRoom {
    const NAME: &'static str = "leaveroom";
    type Answer = Empty;
}

/// `getuserrooms {}` → `{rooms}`: the rooms the user is a member of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetUserRooms {}

impl Method for GetUserRooms {
    const NAME: &'static str = "getuserrooms";
    type Answer = UserRooms;
}

/// The answer of `getuserrooms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRooms {
    /// Room ids, ascending.
    pub rooms: Vec<i64>,
}

/// `getroomopeninfo {rid}` → `{oinfo}`: a room's public info.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRoomOpenInfo {
    /// Room id.
    pub rid: i64,
}

impl Method for GetRoomOpenInfo {
    const NAME: &'static str = "getroomopeninfo";
    type Answer = RoomOpenInfo;
}

/// The answer of `getroomopeninfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomOpenInfo {
    /// Public info; `""` when unset.
    pub oinfo: String,
}

/// `getroomsopeninfo {rids}` → `{info: {"<rid>": oinfo}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRoomsOpenInfo {
    /// Room ids.
    pub rids: Vec<i64>,
}

impl Method for GetRoomsOpenInfo {
    const NAME: &'static str = "getroomsopeninfo";
    type Answer = RoomsOpenInfo;
}

/// The answer of `getroomsopeninfo`: public info by room, keyed by the
/// decimal rid as a string (as `getroomcount`'s `cn`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomsOpenInfo {
    /// Public info by rid.
    pub info: HashMap<String, String>,
}

/// `getservertime {}` → `{mts}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetServerTime {}

impl Method for GetServerTime {
    const NAME: &'static str = "getservertime";
    type Answer = ServerTime;
}

/// The server's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerTime {
    /// Unix milliseconds.
    pub mts: i64,
}
