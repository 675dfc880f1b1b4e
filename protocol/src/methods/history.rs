//! Room message history: paging through a room's messages, one message by
//! its `mid`, deleting one, and counting. The same shapes serve the client
//! gate (the user is implicit) and the server API (which names `uid`, the
//! user whose view it asks for).

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Empty, Method};
use crate::client::MessageBody;

/// The largest page the RTM SDKs document (`num` ≤ 20).
pub const MAX_HISTORY_PAGE: i64 = 20;

/// `type` of [`GetMsg`]/[`DelMsg`] for a room message (1 is P2P, 2 group,
/// 4 broadcast).
pub const ROOM_MESSAGE_TYPE: i64 = 3;

/// `getroommsg {uid, rid, desc, num, begin?, end?, lastid?, mtypes?}` →
/// [`HistoryPage`]: a page of room `rid`'s history as user `uid` may see it.
/// `desc = false` pages forward from `begin`, `desc = true` backward from
/// `end`; `begin`/`end` are inclusive Unix milliseconds (0 = unbounded);
/// `lastid` is the previous page's cursor, exclusive (0 = none). Feed the
/// answer's `begin`, `end` and `lastid` back unchanged for the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRoomMsg {
    /// Whose view (the server API names the user it asks for).
    pub uid: i64,
    /// Room id.
    pub rid: i64,
    /// Newest first.
    pub desc: bool,
    /// Rows wanted, 1 to 20.
    pub num: i64,
    /// Oldest `mtime` wanted (ms, inclusive; 0 = unbounded).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub begin: i64,
    /// Newest `mtime` wanted (ms, inclusive; 0 = now).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub end: i64,
    /// The previous page's cursor, exclusive (0 = first page).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lastid: i64,
    /// Only these mtypes (absent or empty = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtypes: Option<Vec<i64>>,
}

impl Method for GetRoomMsg {
    const NAME: &'static str = "getroommsg";
    type Answer = HistoryPage;
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A page of history: `num` rows, the cursor `lastid` of the last one, and
/// the `begin`/`end` asked for, to send back for the next page. A page with
/// fewer rows than asked is the last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// Rows in `msgs`.
    pub num: i64,
    /// The cursor of the last row (the request's `lastid` when empty).
    pub lastid: i64,
    /// As asked.
    pub begin: i64,
    /// As asked.
    pub end: i64,
    /// The rows, in the order asked.
    pub msgs: Vec<HistoryRow>,
}

/// One history row, on the wire an 8-element array
/// `[id, from, mtype, mid, deleted, msg, attrs, mtime]`. Chat (mtype 30)
/// is the plain text here, never the translation map clients get pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// The row's cursor: increasing within a room.
    pub id: i64,
    /// Sender uid.
    pub from: i64,
    /// Message type.
    pub mtype: i64,
    /// The sender's message id.
    pub mid: i64,
    /// Always `false`: deleted rows are left out.
    pub deleted: bool,
    /// The body, str or bin as sent.
    pub msg: MessageBody,
    /// Attributes.
    pub attrs: String,
    /// Server time of the send, Unix ms.
    pub mtime: i64,
}

impl Serialize for HistoryRow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut row = serializer.serialize_tuple(8)?;
        row.serialize_element(&self.id)?;
        row.serialize_element(&self.from)?;
        row.serialize_element(&self.mtype)?;
        row.serialize_element(&self.mid)?;
        row.serialize_element(&self.deleted)?;
        row.serialize_element(&self.msg)?;
        row.serialize_element(&self.attrs)?;
        row.serialize_element(&self.mtime)?;
        row.end()
    }
}

impl<'de> Deserialize<'de> for HistoryRow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowVisitor;

        impl<'de> Visitor<'de> for RowVisitor {
            type Value = HistoryRow;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an 8-element history row")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HistoryRow, A::Error> {
                fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(seq: &mut A, i: usize) -> Result<T, A::Error> {
                    seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &"an 8-element history row"))
                }
                let row = HistoryRow {
                    id: next(&mut seq, 0)?,
                    from: next(&mut seq, 1)?,
                    mtype: next(&mut seq, 2)?,
                    mid: next(&mut seq, 3)?,
                    deleted: next(&mut seq, 4)?,
                    msg: next(&mut seq, 5)?,
                    attrs: next(&mut seq, 6)?,
                    mtime: next(&mut seq, 7)?,
                };
                // Tolerate columns a newer server may add.
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(row)
            }
        }

        deserializer.deserialize_tuple(8, RowVisitor)
    }
}

/// `getroommsgcount {uid?, rid, begin?, end?, mtypes?}` → `{count}`: how
/// many of room `rid`'s messages fall between `begin` and `end` (ms,
/// inclusive; 0 = unbounded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRoomMsgCount {
    /// Whose view (server API only; a client's is its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    /// Room id.
    pub rid: i64,
    /// Oldest `mtime` counted (0 = unbounded).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub begin: i64,
    /// Newest `mtime` counted (0 = now).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub end: i64,
    /// Only these mtypes (absent or empty = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtypes: Option<Vec<i64>>,
}

impl Method for GetRoomMsgCount {
    const NAME: &'static str = "getroommsgcount";
    type Answer = MessageCount;
}

/// The answer of `getroommsgcount`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCount {
    /// Messages counted.
    pub count: i64,
}

/// `getmsgnum {type, xid, mtypes?, begin?, end?}` → `{sender, num}`: how
/// many messages a conversation (for a room: `type` 3, `xid` the room id)
/// holds between `begin` and `end`, and from how many distinct senders. The
/// Python server SDK's `get_message_num`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMsgNum {
    /// 3 = room.
    #[serde(rename = "type")]
    pub kind: i64,
    /// The conversation: the room id.
    pub xid: i64,
    /// Only these mtypes (absent or empty = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtypes: Option<Vec<i64>>,
    /// Oldest `mtime` counted (0 = unbounded).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub begin: i64,
    /// Newest `mtime` counted (0 = now).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub end: i64,
}

impl Method for GetMsgNum {
    const NAME: &'static str = "getmsgnum";
    type Answer = MessageNum;
}

/// The answer of `getmsgnum`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageNum {
    /// Distinct senders of the messages counted.
    pub sender: i64,
    /// Messages counted.
    pub num: i64,
}

/// `getmsg {mid, from, xid, type}` → [`MessageInfo`]: one message by its
/// sender's `mid`; for a room message `type` is 3 and `xid` the room id.
/// Not found (never sent, deleted or expired) → 200070.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMsg {
    /// The sender's message id.
    pub mid: i64,
    /// Sender uid.
    pub from: i64,
    /// The conversation: the room id for a room message.
    pub xid: i64,
    /// 3 = room (the only kind this server keeps).
    #[serde(rename = "type")]
    pub kind: i64,
}

impl Method for GetMsg {
    const NAME: &'static str = "getmsg";
    type Answer = MessageInfo;
}

/// The answer of `getmsg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageInfo {
    /// The row's cursor.
    pub id: i64,
    /// Message type.
    pub mtype: i64,
    /// The body, str or bin as sent (chat as plain text).
    pub msg: MessageBody,
    /// Attributes.
    pub attrs: String,
    /// Server time of the send, Unix ms.
    pub mtime: i64,
}

/// `delmsg {mid, from, xid, type}` → `{}`: deletes one message from history
/// (it vanishes from later pages and from `getmsg`). Deleting a message
/// that is not there answers `{}` too, so a retry is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelMsg {
    /// The sender's message id.
    pub mid: i64,
    /// Sender uid.
    pub from: i64,
    /// The conversation: the room id for a room message.
    pub xid: i64,
    /// 3 = room.
    #[serde(rename = "type")]
    pub kind: i64,
}

impl Method for DelMsg {
    const NAME: &'static str = "delmsg";
    type Answer = Empty;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::encode;
    use crate::Encoding;

    #[test]
    fn a_row_is_an_eight_element_array() {
        let row = HistoryRow {
            id: 1004,
            from: 1001,
            mtype: 52,
            mid: 7,
            deleted: false,
            msg: MessageBody::Binary(vec![0, 1, 2, 0xff]),
            attrs: String::new(),
            mtime: 1_795_746_584_322,
        };
        let bytes = encode(Encoding::MsgPack, &row).unwrap();
        assert_eq!(bytes[0], 0x98, "fixarray of 8");
        assert_eq!(&bytes[1..3], &[0xcd, 0x03], "id 1004 as uint16");
        assert!(bytes.windows(6).any(|w| w == [0xc4, 4, 0, 1, 2, 0xff]), "bin 8 of 4 bytes");
        assert_eq!(rmp_serde::from_slice::<HistoryRow>(&bytes).unwrap(), row);
        let text = HistoryRow { msg: MessageBody::Text("hi".into()), ..row };
        assert_eq!(serde_json::to_string(&text).unwrap(), r#"[1004,1001,52,7,false,"hi","",1795746584322]"#);
    }
}
