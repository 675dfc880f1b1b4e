//! Whole FPNN frames: decoding from a byte buffer in two steps, and encoding.
//!
//! Decoding first validates the fixed header and checks the announced length
//! against a maximum *before* any of the body is buffered; only then does it
//! wait for the body. An incomplete frame is `Ok(None)`, never an error.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::error::{EncodeError, FrameError};
use crate::header::{Encoding, Header, MessageType, HEADER_LEN, PROTOCOL_VERSION};
use crate::payload;

/// Default maximum frame length, header and body together: 8 MiB, as the
/// FPNN C++ framework's `FPNN.global.max.package.len`.
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// How much buffer to reserve at most while waiting for a body. A peer that
/// announces a large frame and then stalls cannot make us allocate all of it
/// up front; the buffer grows as bytes actually arrive.
const MAX_RESERVE_AHEAD: usize = 64 * 1024;

/// A quest: a method call, oneway (no sequence number, never answered) or
/// twoway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quest {
    /// The version byte as received (answers mirror it).
    pub version: u8,
    /// Payload encoding; the answer uses the same.
    pub encoding: Encoding,
    /// `Some(seq)` for a twoway quest, `None` for a oneway quest.
    pub seq: Option<u32>,
    /// Method name, 1 to 255 raw bytes (UTF-8 in practice).
    pub method: Bytes,
    /// The payload: a msgpack or JSON map.
    pub payload: Bytes,
}

impl Quest {
    /// The method name as text, if it is valid UTF-8.
    pub fn method_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.method).ok()
    }

    /// Whether the sender waits for an answer.
    pub fn is_twoway(&self) -> bool {
        self.seq.is_some()
    }
}

/// An answer to a twoway quest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The version byte.
    pub version: u8,
    /// Payload encoding.
    pub encoding: Encoding,
    /// The sequence number of the quest this answers.
    pub seq: u32,
    /// 0 for success; any other value marks an error answer `{code, ex}`.
    pub status: u8,
    /// The payload: a msgpack or JSON map, never empty.
    pub payload: Bytes,
}

impl Answer {
    /// Whether this is an error answer.
    pub fn is_error(&self) -> bool {
        self.status != 0
    }
}

/// One FPNN frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A oneway or twoway quest.
    Quest(Quest),
    /// An answer.
    Answer(Answer),
}

impl Frame {
    /// Decodes one frame from the front of `buf`.
    ///
    /// Returns `Ok(None)` if the frame is not complete yet (after reserving
    /// room for a bounded part of the rest). On success the frame's bytes
    /// are removed from `buf` without copying the payload.
    pub fn decode(buf: &mut BytesMut, max_frame_len: usize) -> Result<Option<Self>, FrameError> {
        let Some(header) = Header::parse(buf)? else {
            return Ok(None);
        };
        let len = header.frame_len();
        if len > max_frame_len as u64 {
            return Err(FrameError::TooLarge { len, max: max_frame_len });
        }
        // `len <= max_frame_len`, so it fits in usize.
        let len = len as usize;
        if buf.len() < len {
            buf.reserve((len - buf.len()).min(MAX_RESERVE_AHEAD));
            return Ok(None);
        }
        let mut body = buf.split_to(len).freeze();
        body.advance(HEADER_LEN);
        let frame = match header.mtype {
            MessageType::Oneway | MessageType::Twoway => {
                let seq = (header.mtype == MessageType::Twoway).then(|| body.get_u32_le());
                let method = body.split_to(usize::from(header.ss));
                Self::Quest(Quest { version: header.version, encoding: header.encoding, seq, method, payload: body })
            }
            MessageType::Answer => Self::Answer(Answer {
                version: header.version,
                encoding: header.encoding,
                seq: body.get_u32_le(),
                status: header.ss,
                payload: body,
            }),
        };
        Ok(Some(frame))
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Self::Quest(q) => {
                let start = begin_quest(out, q.version, q.encoding, q.seq, &q.method)?;
                out.put_slice(&q.payload);
                finish(out, start)
            }
            Self::Answer(a) => {
                let start = begin_answer(out, a.version, a.encoding, a.seq, a.status);
                out.put_slice(&a.payload);
                finish(out, start)
            }
        }
    }
}

/// Encodes a quest whose payload is `payload` serialised with `encoding`,
/// straight into `out` (no intermediate buffer).
pub fn write_quest<T: Serialize + ?Sized>(
    out: &mut BytesMut,
    encoding: Encoding,
    seq: Option<u32>,
    method: &str,
    payload: &T,
) -> Result<(), EncodeError> {
    let start = begin_quest(out, PROTOCOL_VERSION, encoding, seq, method.as_bytes())?;
    write_payload(out, start, encoding, payload)
}

/// Encodes an answer whose payload is `payload` serialised with `encoding`,
/// straight into `out`. `status` 0 is success; error answers carry an
/// [`ErrorAnswer`](crate::ErrorAnswer) with a non-zero status.
pub fn write_answer<T: Serialize + ?Sized>(
    out: &mut BytesMut,
    version: u8,
    encoding: Encoding,
    seq: u32,
    status: u8,
    payload: &T,
) -> Result<(), EncodeError> {
    let start = begin_answer(out, version, encoding, seq, status);
    write_payload(out, start, encoding, payload)
}

/// Writes the header (with psize 0 for now), the seq and the method name.
/// Returns where the frame starts in `out`.
fn begin_quest(
    out: &mut BytesMut,
    version: u8,
    encoding: Encoding,
    seq: Option<u32>,
    method: &[u8],
) -> Result<usize, EncodeError> {
    let ss = u8::try_from(method.len()).ok().filter(|&n| n > 0).ok_or(EncodeError::MethodLength(method.len()))?;
    let mtype = if seq.is_some() { MessageType::Twoway } else { MessageType::Oneway };
    let start = put_header(out, version, encoding, mtype, ss);
    if let Some(seq) = seq {
        out.put_u32_le(seq);
    }
    out.put_slice(method);
    Ok(start)
}

fn begin_answer(out: &mut BytesMut, version: u8, encoding: Encoding, seq: u32, status: u8) -> usize {
    let start = put_header(out, version, encoding, MessageType::Answer, status);
    out.put_u32_le(seq);
    start
}

fn put_header(out: &mut BytesMut, version: u8, encoding: Encoding, mtype: MessageType, ss: u8) -> usize {
    let start = out.len();
    let mut raw = [0u8; HEADER_LEN];
    Header { version, encoding, mtype, ss, psize: 0 }.write(&mut raw);
    out.put_slice(&raw);
    start
}

/// Serialises the payload after the part already written, then patches the
/// payload length. On failure `out` is left as it was before the frame.
fn write_payload<T: Serialize + ?Sized>(
    out: &mut BytesMut,
    start: usize,
    encoding: Encoding,
    payload: &T,
) -> Result<(), EncodeError> {
    if let Err(e) = payload::encode_into(out, encoding, payload) {
        out.truncate(start);
        return Err(e);
    }
    finish(out, start)
}

/// Fills in psize from what was written since the header and seq/method.
fn finish(out: &mut BytesMut, start: usize) -> Result<(), EncodeError> {
    let header = &out[start..start + HEADER_LEN];
    let prefix = match MessageType::from_byte(header[6]) {
        Some(MessageType::Oneway) => usize::from(header[7]),
        Some(MessageType::Twoway) => 4 + usize::from(header[7]),
        _ => 4,
    };
    let psize = out.len() - start - HEADER_LEN - prefix;
    let Ok(psize32) = u32::try_from(psize) else {
        out.truncate(start);
        return Err(EncodeError::PayloadTooLarge(psize));
    };
    out[start + 8..start + HEADER_LEN].copy_from_slice(&psize32.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quest(seq: Option<u32>, method: &str, payload: &[u8]) -> Frame {
        Frame::Quest(Quest {
            version: 1,
            encoding: Encoding::MsgPack,
            seq,
            method: Bytes::copy_from_slice(method.as_bytes()),
            payload: Bytes::copy_from_slice(payload),
        })
    }

    fn encoded(frame: &Frame) -> BytesMut {
        let mut out = BytesMut::new();
        frame.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn oneway_round_trip_has_no_seq() {
        let frame = quest(None, "hello", &[0x80]);
        let mut buf = encoded(&frame);
        assert_eq!(buf.len(), 12 + 5 + 1);
        assert_eq!(Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap(), Some(frame));
        assert!(buf.is_empty());
    }

    #[test]
    fn twoway_and_answer_round_trip() {
        let frames = [
            quest(Some(99), "addroommember", &[0x81, 0xa1, b'a', 0x01]),
            Frame::Answer(Answer {
                version: 0,
                encoding: Encoding::Json,
                seq: 7,
                status: 1,
                payload: Bytes::from_static(b"{}"),
            }),
        ];
        let mut buf = BytesMut::new();
        for f in &frames {
            f.encode(&mut buf).unwrap();
        }
        for f in frames {
            assert_eq!(Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap(), Some(f));
        }
        assert_eq!(Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap(), None);
    }

    #[test]
    fn incomplete_body_reserves_a_bounded_amount() {
        let mut buf = BytesMut::new();
        buf.put_slice(b"FPNN\x01\x80\x00\x01");
        buf.put_u32_le(4 * 1024 * 1024);
        assert_eq!(Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap(), None);
        assert!(buf.capacity() < 2 * MAX_RESERVE_AHEAD);
    }

    #[test]
    fn encode_refuses_bad_method_names() {
        let long = "m".repeat(256);
        let mut out = BytesMut::new();
        assert_eq!(write_quest(&mut out, Encoding::MsgPack, Some(1), &long, &()), Err(EncodeError::MethodLength(256)));
        assert_eq!(write_quest(&mut out, Encoding::MsgPack, Some(1), "", &()), Err(EncodeError::MethodLength(0)));
        assert!(out.is_empty());
    }
}
