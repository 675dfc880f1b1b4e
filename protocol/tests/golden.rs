//! Byte-exact frames from the reference (§1.3), produced by the Python RTM
//! SDK's own encoder, and every kind of malformed frame.

use bytes::{BufMut, Bytes, BytesMut};
use rtm_protocol::methods::{AddRoomMember, Empty, Method, Ping, RoomCounts, ServerAuth, Signed};
use rtm_protocol::{
    payload, write_answer, write_quest, Encoding, FpnnCodec, Frame, FrameError, PayloadError, Quest,
    DEFAULT_MAX_FRAME_LEN,
};
use tokio_util::codec::Decoder;

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
}

/// The `addroommember` quest exactly as PY-RTM's `Quest.raw()` produced it.
fn python_addroommember() -> Vec<u8> {
    let mut bytes = hex("46504e4e 00 80 01 0d 51000000 01000000 616464726f6f6d6d656d626572 86 \
         a3706964 ce00a7d8c1 a47369676e d920");
    bytes.extend_from_slice(b"647C9CA29B55362273F0C9688B121AAC");
    bytes.extend(hex("a473616c74 ce075bcd15 a27473 ce6553f100 a3726964 cd1b59 a3756964 cd03e9"));
    bytes
}

#[test]
fn addroommember_quest_matches_the_python_sdk() {
    let auth = ServerAuth::new(11000001, "test-secret-key", 123456789, AddRoomMember::NAME, 1700000000);
    let params = AddRoomMember { rid: 7001, uid: 1001 };
    let signed = Signed { auth: &auth, params: &params };
    // The Python SDK writes version byte 0.
    let frame = Frame::Quest(Quest {
        version: 0,
        encoding: Encoding::MsgPack,
        seq: Some(1),
        method: Bytes::from_static(b"addroommember"),
        payload: payload::encode(Encoding::MsgPack, &signed).unwrap().freeze(),
    });
    let mut out = BytesMut::new();
    frame.encode(&mut out).unwrap();
    assert_eq!(out.to_vec(), python_addroommember());

    // And with version 1 through the one-call encoder, only byte 4 differs.
    let mut out = BytesMut::new();
    write_quest(&mut out, Encoding::MsgPack, Some(1), AddRoomMember::NAME, &signed).unwrap();
    let mut expected = python_addroommember();
    expected[4] = 1;
    assert_eq!(out.to_vec(), expected);
}

#[test]
fn python_quest_decodes_to_the_typed_request() {
    let mut buf = BytesMut::from(&python_addroommember()[..]);
    let Some(Frame::Quest(quest)) = Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap() else {
        panic!("expected a quest");
    };
    assert!(buf.is_empty());
    assert_eq!(quest.version, 0);
    assert_eq!(quest.seq, Some(1));
    assert_eq!(quest.method_str(), Some("addroommember"));
    let params: AddRoomMember = payload::decode(quest.encoding, &quest.payload).unwrap();
    assert_eq!(params, AddRoomMember { rid: 7001, uid: 1001 });
    let auth: ServerAuth = payload::decode(quest.encoding, &quest.payload).unwrap();
    assert_eq!(auth.pid, 11000001);
    assert_eq!(auth.salt, 123456789);
    assert_eq!(auth.ts, 1700000000);
    assert_eq!(auth.sign, "647C9CA29B55362273F0C9688B121AAC");
}

#[test]
fn empty_ok_answer_matches() {
    let mut out = BytesMut::new();
    write_answer(&mut out, 0, Encoding::MsgPack, 1, 0, &Empty {}).unwrap();
    assert_eq!(out.to_vec(), hex("46504e4e 00 80 02 00 01000000 01000000 80"));
}

#[test]
fn room_count_answer_matches() {
    let mut out = BytesMut::new();
    let answer = RoomCounts { cn: vec![(7001, 2)] };
    write_answer(&mut out, 0, Encoding::MsgPack, 7, 0, &answer).unwrap();
    assert_eq!(out.to_vec(), hex("46504e4e 00 80 02 00 0b000000 07000000 81 a2636e 81 a437303031 02"));
}

#[test]
fn ping_quest_matches() {
    let mut out = BytesMut::new();
    write_quest(&mut out, Encoding::MsgPack, Some(0x0102_0304), Ping::NAME, &Ping {}).unwrap();
    out[4] = 0; // as the Python SDK writes it
    assert_eq!(out.to_vec(), hex("46504e4e 00 80 01 05 01000000 04030201 2a70696e67 80"));
}

#[test]
fn go_style_signed_markers_decode_the_same() {
    // {"rid": int16 7001, "uid": int64 1001}: what the Go SDK's codec writes.
    let go = hex("82 a3726964 d11b59 a3756964 d3 00000000000003e9");
    let python = hex("82 a3726964 cd1b59 a3756964 cd03e9");
    let a: AddRoomMember = payload::decode(Encoding::MsgPack, &go).unwrap();
    let b: AddRoomMember = payload::decode(Encoding::MsgPack, &python).unwrap();
    assert_eq!(a, b);
}

#[test]
fn bin_is_accepted_where_text_is_expected() {
    // {"pid": 1, "sign": bin8 "AB", "salt": 2, "ts": 3}
    let bytes = hex("84 a3706964 01 a47369676e c4024142 a473616c74 02 a27473 03");
    let auth: ServerAuth = payload::decode(Encoding::MsgPack, &bytes).unwrap();
    assert_eq!(auth.sign, "AB");
}

#[test]
fn json_quest_round_trips() {
    let mut out = BytesMut::new();
    let params = AddRoomMember { rid: 1, uid: 2 };
    write_quest(&mut out, Encoding::Json, Some(9), AddRoomMember::NAME, &params).unwrap();
    assert_eq!(out[5], 0x40);
    let Some(Frame::Quest(quest)) = Frame::decode(&mut out, DEFAULT_MAX_FRAME_LEN).unwrap() else {
        panic!("expected a quest");
    };
    assert_eq!(&quest.payload[..], br#"{"rid":1,"uid":2}"#);
    assert_eq!(payload::decode::<AddRoomMember>(Encoding::Json, &quest.payload).unwrap(), params);
}

// ---- malformed input ----

fn header(magic: &[u8; 4], flag: u8, mtype: u8, ss: u8, psize: u32) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_slice(magic);
    buf.put_u8(1);
    buf.put_u8(flag);
    buf.put_u8(mtype);
    buf.put_u8(ss);
    buf.put_u32_le(psize);
    buf
}

fn decode_err(mut buf: BytesMut) -> FrameError {
    Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap_err()
}

#[test]
fn bad_magic() {
    assert_eq!(decode_err(header(b"FPNX", 0x80, 1, 1, 1)), FrameError::BadMagic(*b"FPNX"));
    assert!(matches!(decode_err(header(b"GET ", 0x80, 1, 1, 1)), FrameError::BadMagic(_)));
}

#[test]
fn message_type_three() {
    assert_eq!(decode_err(header(b"FPNN", 0x80, 3, 1, 1)), FrameError::BadMessageType(3));
}

#[test]
fn flag_with_no_encoding_bit() {
    assert_eq!(decode_err(header(b"FPNN", 0x00, 1, 1, 1)), FrameError::BadFlag(0x00));
}

#[test]
fn flag_with_both_encoding_bits() {
    assert_eq!(decode_err(header(b"FPNN", 0xC0, 1, 1, 1)), FrameError::BadFlag(0xC0));
}

#[test]
fn empty_method_on_quests() {
    assert_eq!(decode_err(header(b"FPNN", 0x80, 1, 0, 1)), FrameError::EmptyMethod);
    assert_eq!(decode_err(header(b"FPNN", 0x80, 0, 0, 1)), FrameError::EmptyMethod);
    // ss = 0 on an answer is the OK status, not an error.
    let mut buf = header(b"FPNN", 0x80, 2, 0, 1);
    buf.put_u32_le(1);
    buf.put_u8(0x80);
    assert!(Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap().is_some());
}

#[test]
fn oversize_is_refused_before_the_body_is_buffered() {
    let mut buf = header(b"FPNN", 0x80, 1, 4, u32::MAX);
    let capacity = buf.capacity();
    let err = Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap_err();
    assert!(matches!(err, FrameError::TooLarge { max, .. } if max == DEFAULT_MAX_FRAME_LEN), "{err}");
    assert_eq!(buf.capacity(), capacity, "nothing was reserved for the body");

    // Just over the limit, counting the header: 12 + 4 + 4 + psize.
    let psize = (DEFAULT_MAX_FRAME_LEN - 12 - 8 + 1) as u32;
    assert!(matches!(decode_err(header(b"FPNN", 0x80, 1, 4, psize)), FrameError::TooLarge { .. }));
    let mut at_limit = header(b"FPNN", 0x80, 1, 4, psize - 1);
    assert_eq!(Frame::decode(&mut at_limit, DEFAULT_MAX_FRAME_LEN).unwrap(), None);
}

#[test]
fn truncated_body_waits_then_fails_at_end_of_stream() {
    let full = python_addroommember();
    let mut buf = BytesMut::from(&full[..full.len() - 1]);
    assert_eq!(Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap(), None);
    assert_eq!(buf.len(), full.len() - 1, "nothing consumed");
    let mut codec = FpnnCodec::default();
    assert!(codec.decode_eof(&mut buf).is_err(), "a stream ending mid-frame is an error");
}

#[test]
fn non_map_payload() {
    // A twoway quest "m" whose payload is the array [1].
    let mut buf = header(b"FPNN", 0x80, 1, 1, 2);
    buf.put_u32_le(5);
    buf.put_u8(b'm');
    buf.put_slice(&[0x91, 0x01]);
    let Some(Frame::Quest(quest)) = Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap() else {
        panic!("the frame itself is well formed");
    };
    let err = payload::decode::<Empty>(quest.encoding, &quest.payload).unwrap_err();
    assert_eq!(err, PayloadError::NotAMap("array"));
    assert_eq!(err.code().code(), 10006);
}
