//! Property tests: random frames round-trip, and any way of splitting the
//! byte stream decodes to the same frames.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rtm_protocol::methods::AddRoomMembers;
use rtm_protocol::{payload, Answer, Encoding, Frame, Quest, DEFAULT_MAX_FRAME_LEN};

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![Just(Encoding::MsgPack), Just(Encoding::Json)]
}

fn frame() -> impl Strategy<Value = Frame> {
    let quest = (
        any::<u8>(),
        encoding(),
        proptest::option::of(any::<u32>()),
        proptest::collection::vec(any::<u8>(), 1..=255),
        proptest::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(|(version, encoding, seq, method, payload)| {
            Frame::Quest(Quest { version, encoding, seq, method: Bytes::from(method), payload: Bytes::from(payload) })
        });
    let answer = (any::<u8>(), encoding(), any::<u32>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..512))
        .prop_map(|(version, encoding, seq, status, payload)| {
            Frame::Answer(Answer { version, encoding, seq, status, payload: Bytes::from(payload) })
        });
    prop_oneof![quest, answer]
}

fn encode_all(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for f in frames {
        f.encode(&mut out).unwrap();
    }
    out.to_vec()
}

/// Feeds `bytes` in the given chunk sizes, decoding after each chunk.
fn decode_in_chunks(bytes: &[u8], chunks: impl Iterator<Item = usize>) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = bytes;
    let mut chunks = chunks.peekable();
    while !rest.is_empty() {
        let n = chunks.next().unwrap_or(rest.len()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(frame) = Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap() {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty());
    frames
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips(frames in proptest::collection::vec(frame(), 1..8)) {
        let bytes = encode_all(&frames);
        let mut buf = BytesMut::from(&bytes[..]);
        let mut decoded = Vec::new();
        while let Some(f) = Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap() {
            decoded.push(f);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn one_byte_at_a_time_decodes_the_same(frames in proptest::collection::vec(frame(), 1..4)) {
        let bytes = encode_all(&frames);
        prop_assert_eq!(decode_in_chunks(&bytes, std::iter::repeat(1)), frames);
    }

    #[test]
    fn random_splits_decode_the_same(
        frames in proptest::collection::vec(frame(), 1..8),
        splits in proptest::collection::vec(1usize..64, 0..64),
    ) {
        let bytes = encode_all(&frames);
        prop_assert_eq!(decode_in_chunks(&bytes, splits.into_iter()), frames);
    }

    #[test]
    fn python_and_go_integer_markers_decode_to_the_same_values(
        rid in any::<i64>(),
        uids in proptest::collection::vec(any::<i64>(), 0..20),
        go_style in proptest::collection::vec(any::<bool>(), 21),
    ) {
        // Python writes the smallest encoding, with unsigned markers for
        // non-negative values; Go writes the smallest *signed* marker.
        fn python_int(out: &mut Vec<u8>, v: i64) {
            if v >= 0 {
                rmp::encode::write_uint(out, v as u64).unwrap();
            } else {
                rmp::encode::write_sint(out, v).unwrap();
            }
        }
        fn go_int(out: &mut Vec<u8>, v: i64) {
            if (-32..=127).contains(&v) {
                out.push(v as i8 as u8);
            } else if let Ok(x) = i8::try_from(v) {
                out.extend_from_slice(&[0xd0, x as u8]);
            } else if let Ok(x) = i16::try_from(v) {
                out.push(0xd1);
                out.extend_from_slice(&x.to_be_bytes());
            } else if let Ok(x) = i32::try_from(v) {
                out.push(0xd2);
                out.extend_from_slice(&x.to_be_bytes());
            } else {
                out.push(0xd3);
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        let int = |out: &mut Vec<u8>, v: i64, go: bool| if go { go_int(out, v) } else { python_int(out, v) };
        let mut bytes = Vec::new();
        rmp::encode::write_map_len(&mut bytes, 2).unwrap();
        rmp::encode::write_str(&mut bytes, "rid").unwrap();
        int(&mut bytes, rid, go_style[0]);
        rmp::encode::write_str(&mut bytes, "uids").unwrap();
        rmp::encode::write_array_len(&mut bytes, uids.len() as u32).unwrap();
        for (i, &uid) in uids.iter().enumerate() {
            int(&mut bytes, uid, go_style[i + 1]);
        }
        let decoded: AddRoomMembers = payload::decode(Encoding::MsgPack, &bytes).unwrap();
        prop_assert_eq!(decoded, AddRoomMembers { rid, uids });
    }
}
