//! Byte-exact compatibility with the existing RTM server SDKs.
//!
//! `python_quest` encodes a quest exactly as the Python RTM SDK does
//! (version byte 0, msgpack with the smallest unsigned integer markers, keys
//! in the SDK's order). It is first checked against the bytes the SDK itself
//! produced (reference §1.3), then sent to the server with a current `ts`,
//! and the server's answer bytes are compared exactly.

use tokio::io::AsyncWriteExt;

use crate::support::*;

enum Py<'a> {
    Int(i64),
    Ints(&'a [i64]),
    Str(&'a str),
    Bin(&'a [u8]),
}

fn py_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        rmp::encode::write_uint(out, v as u64).unwrap();
    } else {
        rmp::encode::write_sint(out, v).unwrap();
    }
}

/// A twoway quest as the Python SDK's `Quest.raw()` builds it.
fn python_quest(
    seq: u32,
    method: &str,
    pid: i64,
    secret: &str,
    salt: i64,
    ts: i64,
    params: &[(&str, Py<'_>)],
) -> Vec<u8> {
    let sign = rtm_protocol::sign::server_sign(pid, secret, salt, method, ts);
    let mut payload = Vec::new();
    rmp::encode::write_map_len(&mut payload, 4 + params.len() as u32).unwrap();
    rmp::encode::write_str(&mut payload, "pid").unwrap();
    py_int(&mut payload, pid);
    rmp::encode::write_str(&mut payload, "sign").unwrap();
    rmp::encode::write_str(&mut payload, std::str::from_utf8(&sign).unwrap()).unwrap();
    rmp::encode::write_str(&mut payload, "salt").unwrap();
    py_int(&mut payload, salt);
    rmp::encode::write_str(&mut payload, "ts").unwrap();
    py_int(&mut payload, ts);
    for (key, value) in params {
        rmp::encode::write_str(&mut payload, key).unwrap();
        match value {
            Py::Int(v) => py_int(&mut payload, *v),
            Py::Ints(list) => {
                rmp::encode::write_array_len(&mut payload, list.len() as u32).unwrap();
                for v in *list {
                    py_int(&mut payload, *v);
                }
            }
            Py::Str(text) => rmp::encode::write_str(&mut payload, text).unwrap(),
            Py::Bin(bytes) => rmp::encode::write_bin(&mut payload, bytes).unwrap(),
        }
    }
    let mut frame = b"FPNN".to_vec();
    frame.extend_from_slice(&[0, 0x80, 1, method.len() as u8]);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&seq.to_le_bytes());
    frame.extend_from_slice(method.as_bytes());
    frame.extend_from_slice(&payload);
    frame
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

#[test]
fn the_python_encoder_here_matches_the_sdk_bytes() {
    let bytes = python_quest(
        1,
        "addroommember",
        11000001,
        "test-secret-key",
        123456789,
        1700000000,
        &[("rid", Py::Int(7001)), ("uid", Py::Int(1001))],
    );
    let mut expected =
        hex("46504e4e 00 80 01 0d 51000000 01000000 616464726f6f6d6d656d626572 86 a3706964 ce00a7d8c1 a47369676e d920");
    expected.extend_from_slice(b"647C9CA29B55362273F0C9688B121AAC");
    expected.extend(hex("a473616c74 ce075bcd15 a27473 ce6553f100 a3726964 cd1b59 a3756964 cd03e9"));
    assert_eq!(bytes, expected);
}

#[tokio::test]
async fn the_server_answers_python_bytes_with_python_bytes() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let ts = now_secs();
    // Two members through Python-encoded quests (the same salt, as the SDK
    // does within one millisecond): each answer is the exact empty OK answer.
    for (seq, uid) in [(1u32, 1001), (2, 1002)] {
        let quest = python_quest(
            seq,
            "addroommember",
            PID,
            SECRET,
            1_700_000_000_123,
            ts,
            &[("rid", Py::Int(7001)), ("uid", Py::Int(uid))],
        );
        c.stream.write_all(&quest).await.unwrap();
        let answer = c.read_frame().await.unwrap();
        let mut bytes = bytes::BytesMut::new();
        answer.encode(&mut bytes).unwrap();
        let mut expected = hex("46504e4e 00 80 02 00 01000000");
        expected.extend_from_slice(&seq.to_le_bytes());
        expected.push(0x80);
        assert_eq!(bytes.to_vec(), expected);
    }
    let quest = python_quest(7, "getroomcount", PID, SECRET, 1_700_000_000_124, ts, &[("rids", Py::Ints(&[7001]))]);
    c.stream.write_all(&quest).await.unwrap();
    let answer = c.read_frame().await.unwrap();
    let mut bytes = bytes::BytesMut::new();
    answer.encode(&mut bytes).unwrap();
    assert_eq!(bytes.to_vec(), hex("46504e4e 00 80 02 00 0b000000 07000000 81 a2636e 81 a437303031 02"));

    // The Python *ping quest: `{ts}` comes back as a one-key map.
    c.stream.write_all(&hex("46504e4e 00 80 01 05 01000000 09000000 2a70696e67 80")).await.unwrap();
    let Some(rtm_protocol::Frame::Answer(answer)) = c.read_frame().await else { panic!("an answer") };
    assert_eq!((answer.version, answer.seq, answer.status), (0, 9, 0));
    assert_eq!(&answer.payload[..4], &hex("81 a2 7473")[..]);
    server.stop().await;
}

#[tokio::test]
async fn go_style_signed_integers_are_accepted() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let ts = now_secs();
    let salt: i64 = 1_700_000_000_000_001;
    let sign = rtm_protocol::sign::server_sign(PID, SECRET, salt, "addroommember", ts);
    // The Go SDK's codec writes positive integers with signed markers.
    let mut payload = vec![0x86];
    payload.extend(hex("a3706964 d1"));
    payload.extend_from_slice(&(PID as i16).to_be_bytes());
    payload.extend(hex("a47369676e d920"));
    payload.extend_from_slice(&sign);
    payload.extend(hex("a473616c74 d3"));
    payload.extend_from_slice(&salt.to_be_bytes());
    payload.extend(hex("a27473 d2"));
    payload.extend_from_slice(&(ts as i32).to_be_bytes());
    payload.extend(hex("a3726964 d1 1b59 a3756964 d3 00000000000003e9"));
    let mut frame = b"FPNN\x01\x80\x01\x0d".to_vec();
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&5u32.to_le_bytes());
    frame.extend_from_slice(b"addroommember");
    frame.extend_from_slice(&payload);
    c.stream.write_all(&frame).await.unwrap();
    let Some(rtm_protocol::Frame::Answer(answer)) = c.read_frame().await else { panic!("an answer") };
    assert_eq!((answer.version, answer.seq, answer.status), (1, 5, 0), "{answer:?}");
    let members = c.call(&rtm_protocol::methods::GetRoomMembers { rid: 7001 }).await.unwrap();
    assert_eq!(members.uids, vec![1001]);
    server.stop().await;
}

/// The Python server SDK's `get_token` and `send_room_message` (text, chat
/// via `send_room_chat`, cmd via `send_room_cmd`, bytes), in its key order
/// (`pid, sign, salt, ts, mtype, from, rid, mid, msg, attrs`), as it was run
/// unchanged against this server (see docs/api.md); a logged-in member
/// receives each message.
#[tokio::test]
async fn python_tokens_and_room_messages() {
    use rtm_protocol::client::{ChatBody, MessageBody, PushRoomMsg};
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let ts = now_secs();
    c.stream
        .write_all(&python_quest(1, "gettoken", PID, SECRET, 1_700_000_000_201, ts, &[("uid", Py::Int(1002))]))
        .await
        .unwrap();
    let Some(rtm_protocol::Frame::Answer(answer)) = c.read_frame().await else { panic!("an answer") };
    assert_eq!((answer.version, answer.status), (0, 0), "answered in the quest's version");
    let token: rtm_protocol::methods::Token = rtm_protocol::payload::decode(answer.encoding, &answer.payload).unwrap();
    assert!(token.token.len() >= 33);
    let mut member = crate::client_gate::Player::connect(server.client_addr).await;
    let auth = rtm_protocol::client::Auth {
        pid: PID,
        uid: 1002,
        token: token.token,
        version: None,
        lang: None,
        attrs: None,
        device: None,
    };
    assert!(member.call(&auth).await.unwrap().ok);
    member.call(&rtm_protocol::client::EnterRoom { rid: 7001 }).await.unwrap();
    let sends: [(i64, Py<'_>, MessageBody); 4] = [
        (51, Py::Str("hello"), MessageBody::Text("hello".into())),
        (30, Py::Str("hi there"), MessageBody::Chat(ChatBody::untranslated("hi there"))),
        (32, Py::Str("{\"cmd\":1}"), MessageBody::Text("{\"cmd\":1}".into())),
        (52, Py::Bin(&[0, 1, 0xff]), MessageBody::Binary(vec![0, 1, 0xff])),
    ];
    for (i, (mtype, msg, expected)) in sends.into_iter().enumerate() {
        let mid = 29_421_688_759_639_488 + i as i64;
        let params = [
            ("mtype", Py::Int(mtype)),
            ("from", Py::Int(1001)),
            ("rid", Py::Int(7001)),
            ("mid", Py::Int(mid)),
            ("msg", msg),
            ("attrs", Py::Str("")),
        ];
        let quest = python_quest(2 + i as u32, "sendroommsg", PID, SECRET, 1_700_000_000_210 + i as i64, ts, &params);
        c.stream.write_all(&quest).await.unwrap();
        let Some(rtm_protocol::Frame::Answer(answer)) = c.read_frame().await else { panic!("an answer") };
        assert_eq!(answer.status, 0, "{answer:?}");
        let sent: rtm_protocol::client::SentMessage =
            rtm_protocol::payload::decode(answer.encoding, &answer.payload).unwrap();
        let push = member.push("pushroommsg").await;
        let push: PushRoomMsg = rtm_protocol::payload::decode(push.encoding, &push.payload).unwrap();
        assert_eq!((push.from, push.mid, push.mtype, push.mtime), (1001, mid, mtype, sent.mtime));
        assert_eq!(push.msg, expected);
    }
    server.stop().await;
}
