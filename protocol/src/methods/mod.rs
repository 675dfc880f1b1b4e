//! Typed payloads of every server-API method, shared by the server (which
//! decodes quests and encodes answers) and the SDK (the other way round).
//!
//! Each request type implements [`Method`], naming its FPNN method and its
//! answer type. Requests carry only their own parameters; the four
//! authentication keys travel beside them as [`ServerAuth`], joined into one
//! map by [`Signed`].

mod bans;
mod members;
mod ping;
mod project_black;
mod room_info;
mod room_query;

pub use bans::{AddRoomBan, IsBanOfRoom, RemoveRoomBan};
pub use members::{
    AddRoomMember, AddRoomMembers, AddUserRooms, DelRoomMember, DelRoomMembers, DeleteUserRooms, SuccessedUids,
};
pub use ping::{Ping, PingAnswer};
pub use project_black::{AddProjectBlack, IsProjectBlack, RemoveProjectBlack};
pub use room_info::{GetRoomInfo, RoomInfo, SetRoomInfo};
pub use room_query::{GetRoomCount, GetRoomMembers, RoomCounts, RoomMembers};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::sign::server_sign;

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
