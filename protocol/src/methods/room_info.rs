//! Public (`oinfo`) and private (`pinfo`) room info.

use serde::{Deserialize, Serialize};

use super::{Empty, Method};

/// `setroominfo {rid, oinfo?, pinfo?}` → `{}`. An absent field leaves the
/// stored value unchanged; at least one must be present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRoomInfo {
    /// Room id.
    pub rid: i64,
    /// New public info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oinfo: Option<String>,
    /// New private info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinfo: Option<String>,
}

impl Method for SetRoomInfo {
    const NAME: &'static str = "setroominfo";
    type Answer = Empty;
}

/// `getroominfo {rid}` → `{oinfo, pinfo}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRoomInfo {
    /// Room id.
    pub rid: i64,
}

impl Method for GetRoomInfo {
    const NAME: &'static str = "getroominfo";
    type Answer = RoomInfo;
}

/// A room's info. Both keys are always present on the wire (the Go SDK
/// panics otherwise); an unset value is `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Public info.
    #[serde(default)]
    pub oinfo: String,
    /// Private info.
    #[serde(default)]
    pub pinfo: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{payload, Encoding};

    #[test]
    fn unset_info_fields_are_not_sent() {
        let req = SetRoomInfo { rid: 1, oinfo: Some("x".into()), pinfo: None };
        assert_eq!(&payload::encode(Encoding::Json, &req).unwrap()[..], br#"{"rid":1,"oinfo":"x"}"#);
    }

    #[test]
    fn room_info_always_has_both_keys() {
        let bytes = payload::encode(Encoding::MsgPack, &RoomInfo::default()).unwrap();
        assert_eq!(
            &bytes[..],
            &[0x82, 0xa5, b'o', b'i', b'n', b'f', b'o', 0xa0, 0xa5, b'p', b'i', b'n', b'f', b'o', 0xa0]
        );
    }
}
