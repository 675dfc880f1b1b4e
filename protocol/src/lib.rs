//! The FPNN wire protocol and the RTM server-API payloads.
//!
//! This crate does no I/O. It turns bytes into [`Frame`]s and back, parses
//! msgpack or JSON payloads into typed method parameters, and computes the
//! server-API signature. The server, the SDK and the load tester all build on
//! it, so what one encodes the others decode byte for byte.
//!
//! # Wire format
//!
//! ```text
//! header (12 bytes)                         body
//! +------+-----+------+-------+----+-------+-----------+--------+---------+
//! | FPNN | ver | flag | mtype | ss | psize | seq (LE)  | method | payload |
//! +------+-----+------+-------+----+-------+-----------+--------+---------+
//!   4      1     1      1       1    4 LE    4, twoway   ss B,    psize B
//!                                            & answers   quests
//! ```
//!
//! See `docs/protocol.md` for the full contract.
//!
//! # Layout
//!
//! - [`header`]: the fixed 12-byte header.
//! - [`frame`]: [`Frame`], [`Quest`], [`Answer`]; two-step decoding and encoding.
//! - [`codec`]: a `tokio_util::codec` adapter (feature `codec`, on by default).
//! - [`value`] and [`params`]: lenient payload parsing and typed parameters
//!   with errors that name the key.
//! - [`payload`]: msgpack / JSON encoding and decoding helpers.
//! - [`methods`]: request and answer structs of every server-API method.
//! - [`encryption`]: FPNN `*key` encryption (feature `encryption`).
//! - [`sign`]: the `pid:secret:salt:cmd:ts` signature.
//! - [`error`]: frame errors and the FPNN / RTM [`ErrorCode`]s.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use rtm_protocol::methods::{AddRoomMember, Method, ServerAuth, Signed};
//! use rtm_protocol::{write_quest, Encoding, Frame, DEFAULT_MAX_FRAME_LEN};
//!
//! let auth = ServerAuth::new(11000001, "test-secret-key", 123456789, AddRoomMember::NAME, 1700000000);
//! let params = AddRoomMember { rid: 7001, uid: 1001 };
//! let mut buf = BytesMut::new();
//! write_quest(&mut buf, Encoding::MsgPack, Some(1), AddRoomMember::NAME, &Signed { auth: &auth, params: &params })?;
//!
//! let Some(Frame::Quest(quest)) = Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN)? else { unreachable!() };
//! let back: AddRoomMember = rtm_protocol::payload::decode(quest.encoding, &quest.payload)?;
//! assert_eq!(back, params);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

#[cfg(feature = "codec")]
pub mod client;
pub mod codec;
#[cfg(feature = "encryption")]
pub mod encryption;
pub mod error;
pub mod frame;
pub mod header;
pub mod methods;
pub mod params;
pub mod payload;
pub mod sign;
pub mod value;

#[cfg(feature = "codec")]
pub use codec::{CodecError, FpnnCodec};
pub use error::{EncodeError, ErrorAnswer, ErrorCode, FrameError, PayloadError};
pub use frame::{write_answer, write_quest, Answer, Frame, Quest, DEFAULT_MAX_FRAME_LEN};
pub use header::{Encoding, Header, MessageType, HEADER_LEN};
pub use value::Value;

/// The body of the decoder fuzz target, shared with the test that replays its
/// corpus. Decodes every frame in `data`, parses each payload, and checks that
/// a decoded frame re-encodes to the same frame. Panics only on a bug.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    use bytes::BytesMut;
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = Frame::decode(&mut buf, 64 * 1024) {
        let payload = match &frame {
            Frame::Quest(q) => (q.encoding, &q.payload),
            Frame::Answer(a) => (a.encoding, &a.payload),
        };
        if let Ok(value) = payload::parse(payload.0, payload.1) {
            let _ = params::from_value::<methods::AddRoomMembers>(&value);
            let _ = params::from_value::<methods::SetRoomInfo>(&value);
            let _ = params::from_value::<methods::GetRoomCount>(&value);
            let _ = params::from_value::<methods::ServerAuth>(&value);
            let _ = params::from_value::<methods::RoomCounts>(&value);
        }
        let mut again = BytesMut::new();
        frame.encode(&mut again).expect("a decoded frame re-encodes");
        let back = Frame::decode(&mut again, 64 * 1024).expect("re-encoded frame decodes");
        assert_eq!(back.as_ref(), Some(&frame));
        assert!(again.is_empty());
    }
}
