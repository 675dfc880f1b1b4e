//! What is recorded about a room's members: role, send/receive mode and
//! join time. These are the persisted forms; the wire forms live in
//! `rtm_protocol::methods` and are converted at the edge (`cmd/`), so a
//! change of the wire never changes the data directory silently. They
//! serialise exactly as release 0.1.0 wrote them (role as its name, mode as
//! its number).

use std::collections::BTreeMap;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A member's role. The role sets the default [`Mode`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Role {
    /// Sends and receives.
    Presenter,
    /// Sends and receives (the default).
    #[default]
    Attendee,
    /// Receives only.
    Consumer,
}

impl Role {
    /// The name in logs and events: `presenter`, `attendee` or `consumer`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Presenter => "presenter",
            Self::Attendee => "attendee",
            Self::Consumer => "consumer",
        }
    }

    /// The mode a member gets with this role: consumers receive only.
    pub(crate) fn default_mode(self) -> Mode {
        match self {
            Self::Consumer => Mode::ReceiveOnly,
            Self::Presenter | Self::Attendee => Mode::SendReceive,
        }
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "presenter" => Ok(Self::Presenter),
            "attendee" => Ok(Self::Attendee),
            "consumer" => Ok(Self::Consumer),
            other => Err(de::Error::custom(format!("unknown role '{other}'"))),
        }
    }
}

/// A member's send/receive mode, numbered as the conference API numbers them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Mode {
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
    /// The number, 1 to 4.
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::SendReceive => 1,
            Self::SendOnly => 2,
            Self::ReceiveOnly => 3,
            Self::Neither => 4,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Self> {
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
        Self::from_code(code).ok_or_else(|| de::Error::custom(format!("unknown mode {code}")))
    }
}

/// A member to add or update, with its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberRole {
    pub(crate) uid: i64,
    pub(crate) role: Role,
}

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
}

/// Per-member records of one room, keyed by uid.
pub(crate) type Participants = BTreeMap<i64, Participant>;

/// A member's record in a full export (for snapshots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ParticipantRecord {
    pub(crate) uid: i64,
    pub(crate) participant: Participant,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The persisted forms are byte-for-byte the wire forms release 0.1.0 logged.
    #[test]
    fn persisted_forms_match_the_wire_forms() {
        use rtm_protocol::methods as wire;
        for (ours, theirs) in [
            (Role::Presenter, wire::Role::Presenter),
            (Role::Attendee, wire::Role::Attendee),
            (Role::Consumer, wire::Role::Consumer),
        ] {
            assert_eq!(rmp_serde::to_vec(&ours).unwrap(), rmp_serde::to_vec(&theirs).unwrap());
        }
        assert_eq!(rmp_serde::to_vec(&Mode::Neither).unwrap(), rmp_serde::to_vec(&wire::Mode::Neither).unwrap());
        let member = MemberRole { uid: 9, role: Role::Consumer };
        let spec = wire::MemberSpec::new(9, wire::Role::Consumer);
        assert_eq!(rmp_serde::to_vec(&member).unwrap(), rmp_serde::to_vec(&spec).unwrap());
    }
}
