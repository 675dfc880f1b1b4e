//! Participants of a room: roles and send/receive modes (the conference
//! API's participants). Any room may carry them; rooms made with
//! `createroom` record every member's join time.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::{Empty, Method};

/// A participant's role. The role sets the default [`Mode`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Presents: sends and receives.
    Presenter,
    /// Takes part: sends and receives (the default).
    #[default]
    Attendee,
    /// Only watches: receive only.
    Consumer,
}

impl Role {
    /// Every role, in wire order.
    pub const ALL: [Role; 3] = [Role::Presenter, Role::Attendee, Role::Consumer];

    /// The wire name: `presenter`, `attendee` or `consumer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Presenter => "presenter",
            Self::Attendee => "attendee",
            Self::Consumer => "consumer",
        }
    }

    /// The role with wire name `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The mode a participant gets with this role: consumers receive only.
    pub fn default_mode(self) -> Mode {
        match self {
            Self::Consumer => Mode::ReceiveOnly,
            Self::Presenter | Self::Attendee => Mode::SendReceive,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_name(&name).ok_or_else(|| {
            de::Error::custom(format!("unknown role '{name}'; expected presenter, attendee or consumer"))
        })
    }
}

/// A participant's send/receive mode, as the conference API numbers them.
/// Stored and reported now; messaging and recording will enforce them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// 1: sends and receives.
    #[default]
    SendReceive,
    /// 2: sends only.
    SendOnly,
    /// 3: receives only.
    ReceiveOnly,
    /// 4: neither sends nor receives.
    Neither,
}

impl Mode {
    /// The wire number, 1 to 4.
    pub fn code(self) -> u8 {
        match self {
            Self::SendReceive => 1,
            Self::SendOnly => 2,
            Self::ReceiveOnly => 3,
            Self::Neither => 4,
        }
    }

    /// The mode numbered `code`.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(Self::SendReceive),
            2 => Some(Self::SendOnly),
            3 => Some(Self::ReceiveOnly),
            4 => Some(Self::Neither),
            _ => None,
        }
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = i64::deserialize(deserializer)?;
        Self::from_code(code).ok_or_else(|| {
            de::Error::custom(format!(
                "mode {code} does not exist; expected 1 (send and receive), 2 (send only), 3 (receive only) or 4 (neither)"
            ))
        })
    }
}

/// A member to add or update, with its role (default attendee).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSpec {
    /// User id.
    pub uid: i64,
    /// Role; absent = attendee.
    #[serde(default)]
    pub role: Role,
}

impl MemberSpec {
    /// A member with a role.
    pub fn new(uid: i64, role: Role) -> Self {
        Self { uid, role }
    }
}

/// `upsertroommembers {rid, members: [{uid, role}]}` → `{}`: adds members
/// with their roles, or changes the role of those already in the room. A
/// new member, or one whose role changes, gets the role's default mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertRoomMembers {
    /// Room id.
    pub rid: i64,
    /// Members and roles.
    pub members: Vec<MemberSpec>,
}

impl Method for UpsertRoomMembers {
    const NAME: &'static str = "upsertroommembers";
    type Answer = Empty;
}

/// `removeroommembers {rid, uids}` → `{}`: removes members with their roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveRoomMembers {
    /// Room id.
    pub rid: i64,
    /// Users to remove.
    pub uids: Vec<i64>,
}

impl Method for RemoveRoomMembers {
    const NAME: &'static str = "removeroommembers";
    type Answer = Empty;
}

/// `listroommembers {rid, cursor?, limit?}` → [`RoomMemberPage`]: members
/// in ascending uid order, after `cursor` (exclusive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRoomMembers {
    /// Room id.
    pub rid: i64,
    /// Start after this uid (the previous page's `next_cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<i64>,
    /// Page size (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

impl Method for ListRoomMembers {
    const NAME: &'static str = "listroommembers";
    type Answer = RoomMemberPage;
}

/// One member as `listroommembers` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMember {
    /// User id.
    pub uid: i64,
    /// Role.
    pub role: Role,
    /// Send/receive mode.
    pub mode: Mode,
    /// When the member joined, Unix milliseconds; 0 when unknown (a member of
    /// an implicit room who joined before any role was set in it).
    pub joined_at: i64,
}

/// A page of members.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMemberPage {
    /// Members, ascending by uid.
    pub members: Vec<RoomMember>,
    /// Whether more members follow; if so, pass `next_cursor` as `cursor`.
    pub more: bool,
    /// The last uid of this page (0 when the page is empty).
    pub next_cursor: i64,
}

/// `setmembermode {rid, uid, mode}` → `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMemberMode {
    /// Room id.
    pub rid: i64,
    /// A member of the room.
    pub uid: i64,
    /// The new mode, 1 to 4.
    pub mode: Mode,
}

impl Method for SetMemberMode {
    const NAME: &'static str = "setmembermode";
    type Answer = Empty;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::from_value;
    use crate::value::Value;

    #[test]
    fn roles_and_modes_travel_as_names_and_numbers() {
        let json = br#"{"rid": 1, "members": [{"uid": 2, "role": "consumer"}, {"uid": 3}]}"#;
        let request: UpsertRoomMembers = from_value(&Value::from_json(json).unwrap()).unwrap();
        assert_eq!(request.members, vec![MemberSpec::new(2, Role::Consumer), MemberSpec::new(3, Role::Attendee)]);
        let member = RoomMember { uid: 2, role: Role::Consumer, mode: Mode::ReceiveOnly, joined_at: 5 };
        assert_eq!(serde_json::to_string(&member).unwrap(), r#"{"uid":2,"role":"consumer","mode":3,"joined_at":5}"#);
        assert_eq!(Role::Consumer.default_mode(), Mode::ReceiveOnly);
        assert_eq!(Role::Presenter.default_mode(), Mode::SendReceive);
    }

    #[test]
    fn unknown_roles_and_modes_name_the_key() {
        let json = br#"{"rid": 1, "members": [{"uid": 2, "role": "king"}]}"#;
        let err = from_value::<UpsertRoomMembers>(&Value::from_json(json).unwrap()).unwrap_err();
        assert!(err.to_string().contains("members[0].role"), "{err}");
        assert!(err.to_string().contains("presenter, attendee or consumer"), "{err}");
        let json = br#"{"rid": 1, "uid": 2, "mode": 5}"#;
        let err = from_value::<SetMemberMode>(&Value::from_json(json).unwrap()).unwrap_err();
        assert!(err.to_string().contains("'mode'"), "{err}");
    }
}
