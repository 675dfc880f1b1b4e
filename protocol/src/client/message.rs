//! Room messages: what a client sends, and the body types shared with pushes.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::methods::Method;

/// The mtype of chat text. Clients receive its body as a [`ChatBody`] map;
/// backends and history get the plain text.
pub const CHAT_MTYPE: i64 = 30;

/// A message body: `str` or `bin`, delivered as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageBody {
    /// A msgpack `str` (JSON string).
    Text(String),
    /// A msgpack `bin`. A `str` that is not UTF-8 is taken as binary too.
    Binary(Vec<u8>),
    /// A chat push to a client: the translation map. Only ever sent, for
    /// mtype 30 (see [`CHAT_MTYPE`]).
    Chat(ChatBody),
}

impl MessageBody {
    /// Size in bytes, as limits count it.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(bytes) => bytes.len(),
            Self::Chat(chat) => chat.source_text.len() + chat.target_text.len(),
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for MessageBody {
    fn default() -> Self {
        Self::Text(String::new())
    }
}

impl Serialize for MessageBody {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(text) => serializer.serialize_str(text),
            Self::Binary(bytes) => serializer.serialize_bytes(bytes),
            Self::Chat(chat) => chat.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for MessageBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor;

        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = MessageBody;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or binary message")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<MessageBody, E> {
                Ok(MessageBody::Text(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<MessageBody, E> {
                Ok(MessageBody::Text(v))
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<MessageBody, E> {
                Ok(MessageBody::Binary(v.to_vec()))
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<MessageBody, E> {
                Ok(MessageBody::Binary(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MessageBody, A::Error> {
                ChatBody::deserialize(de::value::MapAccessDeserializer::new(map)).map(MessageBody::Chat)
            }
        }

        deserializer.deserialize_any(BodyVisitor)
    }
}

/// The body of a chat (mtype 30) push to a client: the translation result.
/// The text shown is `targetText` if not empty, else `sourceText`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatBody {
    /// Source language (`""` when unknown).
    #[serde(default)]
    pub source: String,
    /// Target language (`""`: not translated).
    #[serde(default)]
    pub target: String,
    /// The text as sent.
    #[serde(rename = "sourceText", default)]
    pub source_text: String,
    /// The translation (`""`: none).
    #[serde(rename = "targetText", default)]
    pub target_text: String,
}

impl ChatBody {
    /// Untranslated chat text.
    pub fn untranslated(text: impl Into<String>) -> Self {
        Self { source_text: text.into(), ..Self::default() }
    }
}

/// `sendroommsg {rid, mid, mtype, msg, attrs}` → `{mtime}` from a client:
/// the logged-in user says `msg` in room `rid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRoomMsg {
    /// Room id.
    pub rid: i64,
    /// The sender's message id, unique per sender; a retry reuses it.
    pub mid: i64,
    /// Message type (see `docs/api.md` for which a client may send).
    pub mtype: i64,
    /// The message.
    pub msg: MessageBody,
    /// Attributes, usually JSON.
    #[serde(default)]
    pub attrs: String,
    /// Moderation strategy (accepted, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategyid: Option<String>,
    /// Moderation parameters (accepted, not used).
    #[serde(rename = "checkParams", default, skip_serializing_if = "Option::is_none")]
    pub check_params: Option<String>,
}

impl Method for SendRoomMsg {
    const NAME: &'static str = "sendroommsg";
    type Answer = SentMessage;
}

/// The answer of a send: when the server accepted the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    /// Unix milliseconds.
    pub mtime: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::from_value;
    use crate::value::Value;

    #[test]
    fn bodies_keep_their_wire_type() {
        let text = rmp_serde::to_vec(&MessageBody::Text("hi".into())).unwrap();
        assert_eq!(text, [0xa2, b'h', b'i']);
        let bin = rmp_serde::to_vec(&MessageBody::Binary(vec![0, 1, 0xff])).unwrap();
        assert_eq!(bin, [0xc4, 3, 0, 1, 0xff]);
        #[derive(Deserialize)]
        struct Holder {
            msg: MessageBody,
        }
        for (bytes, expected) in [
            (&[0x81, 0xa3, b'm', b's', b'g', 0xa2, b'h', b'i'][..], MessageBody::Text("hi".into())),
            (&[0x81, 0xa3, b'm', b's', b'g', 0xc4, 2, 0, 0xff][..], MessageBody::Binary(vec![0, 0xff])),
        ] {
            let value = Value::from_msgpack(bytes).unwrap();
            assert_eq!(from_value::<Holder>(&value).unwrap().msg, expected);
        }
    }

    #[test]
    fn chat_goes_out_as_the_translation_map() {
        let chat = MessageBody::Chat(ChatBody::untranslated("hi"));
        let bytes = rmp_serde::to_vec_named(&chat).unwrap();
        let back: MessageBody = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, chat);
        assert_eq!(bytes[0], 0x84, "a map of four keys");
    }
}
