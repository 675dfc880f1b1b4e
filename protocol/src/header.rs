//! The fixed 12-byte FPNN header.
//!
//! ```text
//!  0      4   5    6     7    8          12
//!  +------+---+----+-----+----+----------+
//!  | FPNN |ver|flag|mtype| ss |  psize   |
//!  +------+---+----+-----+----+----------+
//! ```
//!
//! `ss` is the method-name length for quests and the status for answers;
//! `psize` is the payload length, little-endian.

use crate::error::FrameError;

/// Length of the fixed header, in bytes.
pub const HEADER_LEN: usize = 12;

/// The four magic bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"FPNN";

/// The version byte we write. Any version byte is accepted on input: the
/// Python SDK sends 0, Go and Java send 1.
pub const PROTOCOL_VERSION: u8 = 1;

const FLAG_JSON: u8 = 0x40;
const FLAG_MSGPACK: u8 = 0x80;

/// How a frame's payload is encoded (header flag 0x80 or 0x40).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// MessagePack, flag 0x80. Every RTM server SDK sends this.
    MsgPack,
    /// UTF-8 JSON text, flag 0x40.
    Json,
}

impl Encoding {
    /// The header flag byte for this encoding.
    pub const fn flag(self) -> u8 {
        match self {
            Self::MsgPack => FLAG_MSGPACK,
            Self::Json => FLAG_JSON,
        }
    }

    /// Exactly one of 0x80 and 0x40 must be set; the other bits (ZIP, ENCRYPT)
    /// are ignored, as the C++ reference decoder does.
    pub const fn from_flag(flag: u8) -> Option<Self> {
        match flag & (FLAG_MSGPACK | FLAG_JSON) {
            FLAG_MSGPACK => Some(Self::MsgPack),
            FLAG_JSON => Some(Self::Json),
            _ => None,
        }
    }
}

/// The message type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A quest that is never answered.
    Oneway = 0,
    /// A quest with a sequence number that expects an answer.
    Twoway = 1,
    /// An answer to a twoway quest.
    Answer = 2,
}

impl MessageType {
    /// Parses the mtype byte.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Oneway),
            1 => Some(Self::Twoway),
            2 => Some(Self::Answer),
            _ => None,
        }
    }
}

/// A validated fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The version byte, kept so an answer can mirror it.
    pub version: u8,
    /// Payload encoding.
    pub encoding: Encoding,
    /// Message type.
    pub mtype: MessageType,
    /// Method-name length (quests) or status (answers).
    pub ss: u8,
    /// Payload length.
    pub psize: u32,
}

impl Header {
    /// Validates the first [`HEADER_LEN`] bytes of `buf`.
    ///
    /// Returns `Ok(None)` when fewer than 12 bytes are available.
    pub fn parse(buf: &[u8]) -> Result<Option<Self>, FrameError> {
        let Some(raw) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let magic: [u8; 4] = [raw[0], raw[1], raw[2], raw[3]];
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        let encoding = Encoding::from_flag(raw[5]).ok_or(FrameError::BadFlag(raw[5]))?;
        let mtype = MessageType::from_byte(raw[6]).ok_or(FrameError::BadMessageType(raw[6]))?;
        let ss = raw[7];
        if mtype != MessageType::Answer && ss == 0 {
            return Err(FrameError::EmptyMethod);
        }
        let psize = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]);
        Ok(Some(Self { version: raw[4], encoding, mtype, ss, psize }))
    }

    /// Length of the body that follows the header (seq, method, payload).
    pub fn body_len(&self) -> u64 {
        let seq = match self.mtype {
            MessageType::Oneway => 0,
            MessageType::Twoway | MessageType::Answer => 4,
        };
        let method = match self.mtype {
            MessageType::Answer => 0,
            MessageType::Oneway | MessageType::Twoway => u64::from(self.ss),
        };
        seq + method + u64::from(self.psize)
    }

    /// Length of the whole frame, header included.
    pub fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + self.body_len()
    }

    /// Writes the 12 header bytes.
    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[..4].copy_from_slice(&MAGIC);
        out[4] = self.version;
        out[5] = self.encoding.flag();
        out[6] = self.mtype as u8;
        out[7] = self.ss;
        out[8..].copy_from_slice(&self.psize.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(version: u8, flag: u8, mtype: u8, ss: u8, psize: u32) -> Vec<u8> {
        let mut v = b"FPNN".to_vec();
        v.extend_from_slice(&[version, flag, mtype, ss]);
        v.extend_from_slice(&psize.to_le_bytes());
        v
    }

    #[test]
    fn short_buffer_is_incomplete() {
        assert_eq!(Header::parse(b"FPNN\x00\x80\x01").unwrap(), None);
    }

    #[test]
    fn any_version_byte_is_accepted() {
        for version in [0u8, 1, 7, 255] {
            let h = Header::parse(&raw(version, 0x80, 1, 3, 1)).unwrap().unwrap();
            assert_eq!(h.version, version);
        }
    }

    #[test]
    fn flag_needs_exactly_one_encoding_bit() {
        assert_eq!(Encoding::from_flag(0x80), Some(Encoding::MsgPack));
        assert_eq!(Encoding::from_flag(0x40), Some(Encoding::Json));
        assert_eq!(Encoding::from_flag(0x90), Some(Encoding::MsgPack));
        assert_eq!(Encoding::from_flag(0x00), None);
        assert_eq!(Encoding::from_flag(0xC0), None);
    }

    #[test]
    fn body_length_by_message_type() {
        let oneway = Header::parse(&raw(1, 0x80, 0, 5, 10)).unwrap().unwrap();
        assert_eq!(oneway.body_len(), 15);
        let twoway = Header::parse(&raw(1, 0x80, 1, 5, 10)).unwrap().unwrap();
        assert_eq!(twoway.body_len(), 19);
        let answer = Header::parse(&raw(1, 0x80, 2, 1, 10)).unwrap().unwrap();
        assert_eq!(answer.body_len(), 14);
        assert_eq!(answer.frame_len(), 26);
    }

    #[test]
    fn write_then_parse() {
        let h = Header { version: 0, encoding: Encoding::Json, mtype: MessageType::Twoway, ss: 13, psize: 81 };
        let mut out = [0u8; HEADER_LEN];
        h.write(&mut out);
        assert_eq!(Header::parse(&out).unwrap(), Some(h));
    }
}
