//! Typed payloads of every server-API method, shared by the server (which
//! decodes quests and encodes answers) and the SDK (the other way round).
//!
//! Each request type implements [`Method`], naming its FPNN method and its
//! answer type. Requests carry only their own parameters; the four
//! authentication keys travel beside them as [`ServerAuth`], joined into one
//! map by [`Signed`].

mod bans;
mod history;
mod listen;
mod members;
mod messages;
mod participants;
mod ping;
mod project_black;
mod recording;
mod room_info;
mod room_query;
mod rooms;
mod tokens;

pub use bans::{AddRoomBan, IsBanOfRoom, RemoveRoomBan};
pub use history::{
    DelMsg, GetMsg, GetMsgNum, GetRoomMsg, GetRoomMsgCount, HistoryPage, HistoryRow, MessageCount, MessageInfo,
    MessageNum, MAX_HISTORY_PAGE, ROOM_MESSAGE_TYPE,
};
pub use listen::{AddListen, PushEvent, RemoveListen, SetListen};
pub use members::{
    AddRoomMember, AddRoomMembers, AddUserRooms, DelRoomMember, DelRoomMembers, DeleteUserRooms, SuccessedUids,
};
pub use messages::SendRoomMsg;
pub use participants::{
    ListRoomMembers, MemberSpec, Mode, RemoveRoomMembers, Role, RoomMember, RoomMemberPage, SetMemberMode,
    UpsertRoomMembers,
};
pub use ping::{Ping, PingAnswer};
pub use project_black::{AddProjectBlack, IsProjectBlack, RemoveProjectBlack};
pub use recording::{
    AcquireRecording, QueryRecording, RecordingFile, RecordingResource, RecordingStarted, RecordingStatus,
    RecordingStopped, StartPlayback, StartRecording, StopPlayback, StopRecording, UpdateRecording,
};
pub use room_info::{GetRoomInfo, RoomInfo, SetRoomInfo};
pub use room_query::{GetRoomCount, GetRoomMembers, RoomCounts, RoomMembers};
pub use rooms::{
    CreateRoom, CreatedRoom, DeleteRoom, ExtendRoom, ExtendedRoom, GetRoom, KeepRoomAlive, ListRooms, RoomDetails,
    RoomExists, RoomPage, RoomPlayback, UpdateRoom,
};
pub use tokens::{GetToken, Kickout, RemoveToken, Token};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::params::PayloadError;
use crate::sign::server_sign;
use crate::value::Value;

/// A server-API method: its wire name, parameters (`Self`) and answer.
pub trait Method: Serialize + DeserializeOwned {
    /// The FPNN method name.
    const NAME: &'static str;
    /// The payload of a successful answer.
    type Answer: Serialize + DeserializeOwned;
}

/// The empty answer `{}` (encoded as the single msgpack byte 0x80).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The answer `{ok: bool}` of the `is*` queries; `ok` is a real boolean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OkAnswer {
    /// The answer to the question.
    pub ok: bool,
}

/// The four keys that authenticate a server-API quest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAuth {
    /// Project id.
    pub pid: i64,
    /// `UPPER(HEX(MD5("pid:secret:salt:cmd:ts")))`.
    pub sign: String,
    /// A client-chosen number that makes the signature unique.
    pub salt: i64,
    /// Unix time in seconds when the quest was signed.
    pub ts: i64,
}

impl ServerAuth {
    /// Signs a quest for method `cmd`.
    pub fn new(pid: i64, secret: &str, salt: i64, cmd: &str, ts: i64) -> Self {
        let sign = server_sign(pid, secret, salt, cmd, ts);
        Self {
            pid,
            // The sign is ASCII hex.
            sign: sign.iter().map(|&b| char::from(b)).collect(),
            salt,
            ts,
        }
    }
}

/// The authentication keys of a quest, borrowed from its parsed payload.
///
/// The server reads these on every quest; unlike [`ServerAuth`] this does
/// not allocate. Errors name the key, as for any parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRef<'a> {
    /// Project id.
    pub pid: i64,
    /// The signature, as sent (`str` or `bin`).
    pub sign: &'a [u8],
    /// The salt.
    pub salt: i64,
    /// Unix seconds.
    pub ts: i64,
}

impl<'a> AuthRef<'a> {
    /// Reads `pid`, `sign`, `salt` and `ts` from a payload map.
    pub fn from_value(value: &'a Value<'_>) -> Result<Self, PayloadError> {
        let Value::Map(entries) = value else {
            return Err(PayloadError::NotAMap(value.type_name()));
        };
        let (mut pid, mut sign, mut salt, mut ts) = (None, None, None, None);
        for (key, value) in entries {
            let slot = match key {
                Value::Str(k) | Value::Bin(k) => match &k[..] {
                    b"pid" => &mut pid,
                    b"sign" => &mut sign,
                    b"salt" => &mut salt,
                    b"ts" => &mut ts,
                    _ => continue,
                },
                _ => continue,
            };
            *slot = Some(value);
        }
        let int = |name: &str, v: Option<&Value<'_>>| match v {
            None => Err(PayloadError::Missing { key: name.to_owned() }),
            Some(Value::Int(i)) => Ok(*i),
            Some(Value::UInt(_)) => {
                Err(PayloadError::Invalid { key: name.to_owned(), reason: "integer out of range".to_owned() })
            }
            Some(other) => Err(PayloadError::Invalid {
                key: name.to_owned(),
                reason: format!("expected an integer, got {}", other.type_name()),
            }),
        };
        let sign = match sign {
            None => return Err(PayloadError::Missing { key: "sign".to_owned() }),
            Some(Value::Str(s) | Value::Bin(s)) => &s[..],
            Some(other) => {
                return Err(PayloadError::Invalid {
                    key: "sign".to_owned(),
                    reason: format!("expected a string, got {}", other.type_name()),
                })
            }
        };
        Ok(Self { pid: int("pid", pid)?, sign, salt: int("salt", salt)?, ts: int("ts", ts)? })
    }
}

/// A request and its authentication keys, serialised as one flat map
/// (`{pid, sign, salt, ts, ...params}`), as the RTM SDKs send it.
#[derive(Debug, Clone, Serialize)]
pub struct Signed<'a, T: ?Sized> {
    /// The authentication keys.
    #[serde(flatten)]
    pub auth: &'a ServerAuth,
    /// The method's own parameters.
    #[serde(flatten)]
    pub params: &'a T,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{payload, Encoding};

    #[test]
    fn empty_answer_is_one_byte() {
        assert_eq!(&payload::encode(Encoding::MsgPack, &Empty {}).unwrap()[..], &[0x80]);
        assert_eq!(&payload::encode(Encoding::Json, &Empty {}).unwrap()[..], b"{}");
    }

    #[test]
    fn ok_is_a_real_bool() {
        let bytes = payload::encode(Encoding::MsgPack, &OkAnswer { ok: true }).unwrap();
        assert_eq!(&bytes[..], &[0x81, 0xa2, b'o', b'k', 0xc3]);
    }

    #[test]
    fn auth_ref_reads_the_four_keys_or_names_the_missing_one() {
        let auth = ServerAuth::new(7, "s", 9, "m", 11);
        let bytes = payload::encode(Encoding::MsgPack, &Signed { auth: &auth, params: &Empty {} }).unwrap();
        let value = Value::from_msgpack(&bytes).unwrap();
        let got = AuthRef::from_value(&value).unwrap();
        assert_eq!((got.pid, got.sign, got.salt, got.ts), (7, auth.sign.as_bytes(), 9, 11));

        let value = Value::from_json(br#"{"pid": 1, "sign": "x", "salt": 2}"#).unwrap();
        assert_eq!(AuthRef::from_value(&value).unwrap_err(), PayloadError::Missing { key: "ts".into() });
        let value = Value::from_json(br#"{"pid": "1", "sign": "x", "salt": 2, "ts": 3}"#).unwrap();
        assert!(matches!(AuthRef::from_value(&value), Err(PayloadError::Invalid { key, .. }) if key == "pid"));
        let value = Value::from_json(br#"{"pid": 1, "sign": 5, "salt": 2, "ts": 3}"#).unwrap();
        assert!(matches!(AuthRef::from_value(&value), Err(PayloadError::Invalid { key, .. }) if key == "sign"));
    }

    #[test]
    fn signed_request_is_one_flat_map() {
        let auth = ServerAuth::new(11000001, "test-secret-key", 123456789, "addroommember", 1700000000);
        let req = AddRoomMember { rid: 7001, uid: 1001 };
        let signed = Signed { auth: &auth, params: &req };
        let bytes = payload::encode(Encoding::MsgPack, &signed).unwrap();
        assert_eq!(bytes[0], 0x86, "six entries in one map");
        let back: AddRoomMember = payload::decode(Encoding::MsgPack, &bytes).unwrap();
        assert_eq!(back, req);
        let back: ServerAuth = payload::decode(Encoding::MsgPack, &bytes).unwrap();
        assert_eq!(back, auth);
        assert_eq!(auth.sign, "647C9CA29B55362273F0C9688B121AAC");
    }
}
