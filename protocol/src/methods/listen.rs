//! Listening: a server-SDK connection subscribes to room events with
//! `addlisten` / `removelisten` / `setlisten`, and the server pushes each
//! matching event to it as a oneway `pushevent` quest.

use serde::{Deserialize, Serialize};

use super::{Empty, Method};

/// `addlisten {gids?, rids?, uids?, events?}` → `{}`: adds to what this
/// connection listens to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddListen {
    /// Group ids (accepted for compatibility; this server has no groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gids: Option<Vec<i64>>,
    /// Rooms whose events to receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rids: Option<Vec<i64>>,
    /// Users whose events to receive (member and ban events name a user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uids: Option<Vec<i64>>,
    /// Event names to receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
}

impl Method for AddListen {
    const NAME: &'static str = "addlisten";
    type Answer = Empty;
}

/// `removelisten {gids?, rids?, uids?, events?}` → `{}`: removes from what
/// this connection listens to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveListen {
    /// Group ids (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gids: Option<Vec<i64>>,
    /// Rooms to stop listening to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rids: Option<Vec<i64>>,
    /// Users to stop listening to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uids: Option<Vec<i64>>,
    /// Event names to stop receiving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
}

impl Method for RemoveListen {
    const NAME: &'static str = "removelisten";
    type Answer = Empty;
}

/// `setlisten {gids?, rids?, uids?, events?, p2p?, group?, room?, ev?}` →
/// `{}`: replaces what this connection listens to. `room: true` listens to
/// every room, `ev: true` to every event name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetListen {
    /// Group ids (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gids: Option<Vec<i64>>,
    /// Rooms whose events to receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rids: Option<Vec<i64>>,
    /// Users whose events to receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uids: Option<Vec<i64>>,
    /// Event names to receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Every peer-to-peer message (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p: Option<bool>,
    /// Every group (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<bool>,
    /// Every room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<bool>,
    /// Every event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ev: Option<bool>,
}

impl Method for SetListen {
    const NAME: &'static str = "setlisten";
    type Answer = Empty;
}

/// `pushevent {pid, event, uid, time, endpoint, data}`: an event the server
/// pushes to a listening connection (oneway), in the RTM shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushEvent {
    /// Project id.
    pub pid: i64,
    /// Event name, e.g. `member_joined`.
    pub event: String,
    /// The user the event is about; 0 for room-wide events.
    pub uid: i64,
    /// When it happened, Unix seconds (the Go server SDK reads an int32).
    pub time: i64,
    /// Where it came from; empty for room events (RTM fills it for login events).
    pub endpoint: String,
    /// The event's details as a JSON object (always has `rid`).
    pub data: String,
}

impl Method for PushEvent {
    const NAME: &'static str = "pushevent";
    type Answer = Empty;
}
