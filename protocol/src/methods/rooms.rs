//! Scheduled rooms: rooms with a validity window and release policies,
//! created explicitly (`createroom`). Rooms created implicitly by
//! `addroommember` have none of this.

use serde::{Deserialize, Serialize};

use super::participants::MemberSpec;
use super::{Empty, Method, OkAnswer};

/// `createroom` → [`CreatedRoom`]. Times are Unix seconds; durations seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRoom {
    /// Room id; the server assigns one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<i64>,
    /// Start of the validity window (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<i64>,
    /// End of the validity window (default: `valid_from` + 180 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<i64>,
    /// Longest life after the room begins (its second member joins); 0 = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<i64>,
    /// Once begun, a leave that drops the member count below this releases the room; 0 = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_threshold: Option<i64>,
    /// Released after this long without any operation on it; 0 = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_seconds: Option<i64>,
    /// Public info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oinfo: Option<String>,
    /// Private info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinfo: Option<String>,
    /// Members to add at once, with their roles (the window must be open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberSpec>>,
    /// A background played into the room from its creation until it is
    /// released (the conference API's background file; see `startplayback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback: Option<RoomPlayback>,
}

/// `createroom`'s `playback`: files as `startplayback` takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPlayback {
    /// Paths relative to the server's recordings directory, separated by `|`.
    pub files: String,
    /// Times to play the list (default 0: until the room is released).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<i64>,
    /// `local` (default) or `s3`, as for `startplayback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

impl Method for CreateRoom {
    const NAME: &'static str = "createroom";
    type Answer = CreatedRoom;
}

/// The answer of `createroom`: the room id and the effective window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedRoom {
    /// Room id.
    pub rid: i64,
    /// Start of the window, Unix seconds.
    pub valid_from: i64,
    /// End of the window, Unix seconds.
    pub valid_until: i64,
}

/// `updateroom {rid, valid_from?, valid_until?, max_seconds?,
/// release_threshold?, idle_seconds?}` → [`RoomDetails`]: changes the
/// window and policies of a scheduled room; absent keys are unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRoom {
    /// Room id.
    pub rid: i64,
    /// New start of the window, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<i64>,
    /// New end of the window, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<i64>,
    /// New maximum duration after the begin time, seconds; 0 = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<i64>,
    /// New release threshold; 0 = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_threshold: Option<i64>,
    /// New idle release, seconds; 0 = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_seconds: Option<i64>,
}

impl Method for UpdateRoom {
    const NAME: &'static str = "updateroom";
    type Answer = RoomDetails;
}

/// `listrooms {cursor?, limit?}` → [`RoomPage`]: the project's scheduled
/// rooms in ascending rid order, after `cursor` (exclusive). Paging is
/// stable: a room that exists from the first page to the last is listed
/// exactly once, whatever is created or deleted meanwhile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRooms {
    /// Start after this rid (the previous page's `next_cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<i64>,
    /// Page size (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

impl Method for ListRooms {
    const NAME: &'static str = "listrooms";
    type Answer = RoomPage;
}

/// A page of rooms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPage {
    /// Rooms, ascending by rid.
    pub rooms: Vec<RoomDetails>,
    /// Whether more rooms follow; if so, pass `next_cursor` as `cursor`.
    pub more: bool,
    /// The last rid of this page (0 when the page is empty).
    pub next_cursor: i64,
}

/// `getroom {rid}` → [`RoomDetails`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRoom {
    /// Room id.
    pub rid: i64,
}

impl Method for GetRoom {
    const NAME: &'static str = "getroom";
    type Answer = RoomDetails;
}

/// Every attribute of a room. For a room created implicitly (by adding a
/// member) the window and policies are 0 and `scheduled` is false.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomDetails {
    /// Room id.
    pub rid: i64,
    /// Whether the room was created with `createroom`.
    pub scheduled: bool,
    /// Start of the window, Unix seconds (0 if not scheduled).
    pub valid_from: i64,
    /// End of the window, Unix seconds (0 if not scheduled).
    pub valid_until: i64,
    /// Longest life after it begins, seconds; 0 = no limit.
    pub max_seconds: i64,
    /// Release threshold; 0 = never.
    pub release_threshold: i64,
    /// Idle release, seconds; 0 = never.
    pub idle_seconds: i64,
    /// Whether the room extends itself by 15 minutes when it would end
    /// while it still has members.
    pub auto_extend: bool,
    /// Members now.
    pub member_count: i64,
    /// When the second member joined, Unix seconds; 0 = not begun.
    pub begin_time: i64,
    /// `scheduled` (before `valid_from`), `open` (waiting for its second
    /// member) or `active` (begun).
    pub state: String,
    /// Public info.
    pub oinfo: String,
    /// Private info.
    pub pinfo: String,
}

/// `deleteroom {rid}` → `{}`: releases the room (members, info, policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRoom {
    /// Room id.
    pub rid: i64,
}

impl Method for DeleteRoom {
    const NAME: &'static str = "deleteroom";
    type Answer = Empty;
}

/// `roomexists {rid}` → `{ok}`: whether the room exists (scheduled, or
/// holding members or info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomExists {
    /// Room id.
    pub rid: i64,
}

impl Method for RoomExists {
    const NAME: &'static str = "roomexists";
    type Answer = OkAnswer;
}

/// `keeproomalive {rid}` → `{}`: resets the idle clock (the conference
/// API's `nop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepRoomAlive {
    /// Room id.
    pub rid: i64,
}

impl Method for KeepRoomAlive {
    const NAME: &'static str = "keeproomalive";
    type Answer = Empty;
}

/// `extendroom {rid, auto?, minutes?}` → [`ExtendedRoom`]: pushes the end
/// of a scheduled room out by `minutes` (default 15), and/or turns
/// automatic extension on or off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendRoom {
    /// Room id.
    pub rid: i64,
    /// Turn automatic extension on or off. Given alone, the end is not moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<bool>,
    /// Minutes to push the end out by (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<i64>,
}

impl Method for ExtendRoom {
    const NAME: &'static str = "extendroom";
    type Answer = ExtendedRoom;
}

/// The answer of `extendroom`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendedRoom {
    /// The new end of the window, Unix seconds.
    pub valid_until: i64,
    /// Whether automatic extension is on.
    pub auto_extend: bool,
}
