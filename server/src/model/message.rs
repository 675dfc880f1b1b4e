//! Room messages.

/// A message body, as it came: text (`str`) or binary (`bin`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Body {
    Text(String),
    Binary(Vec<u8>),
}

impl Body {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(bytes) => bytes.len(),
        }
    }
}

/// A message said in a room, as accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoomMessage {
    pub(crate) pid: i64,
    pub(crate) rid: i64,
    pub(crate) from: i64,
    /// The sender's id for it, unique per sender.
    pub(crate) mid: i64,
    pub(crate) mtype: i64,
    pub(crate) body: Body,
    pub(crate) attrs: String,
    /// When the server accepted it, Unix milliseconds.
    pub(crate) mtime: i64,
}

/// The mtype of chat text: clients receive it as the translation map.
pub(crate) const CHAT_MTYPE: i64 = 30;
