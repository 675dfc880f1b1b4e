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
    Bool(bool),
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
            Py::Bool(b) => rmp::encode::write_bool(&mut payload, *b).unwrap(),
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

/// `get_room_message(1001, 7001, True, 10, lastid=3, mtypes=[51, 52])`, as
/// the Python SDK's `Quest.raw()` encoded it (salt 123456789, ts 1700000000).
#[test]
fn the_python_encoder_here_matches_the_sdk_history_bytes() {
    let params = [
        ("uid", Py::Int(1001)),
        ("rid", Py::Int(7001)),
        ("desc", Py::Bool(true)),
        ("num", Py::Int(10)),
        ("lastid", Py::Int(3)),
        ("mtypes", Py::Ints(&[51, 52])),
    ];
    let bytes = python_quest(1, "getroommsg", 11000001, "test-secret-key", 123456789, 1700000000, &params);
    let expected = hex(
        "46504e4e0080010a6e00000001000000676574726f6f6d6d73678aa3706964ce00a7d8c1a47369676ed920323337394337373230313735\
         3743344531363737353530433435363832434434a473616c74ce075bcd15a27473ce6553f100a3756964cd03e9a3726964cd1b59a46465\
         7363c3a36e756d0aa66c617374696403a66d7479706573923334",
    );
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

/// The Python server SDK's history calls (`get_room_message`,
/// `get_room_message_info`, `get_message_num`, `delete_room_message`), in
/// its exact bytes, read as it reads the answers. The unchanged SDK was run
/// against this server the same way (docs/api.md).
#[tokio::test]
async fn python_history_methods() {
    use rtm_protocol::Value;
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let ts = now_secs();
    let mut seq = 0;
    let mut call = |method: &'static str, params: Vec<(&'static str, Py<'static>)>| {
        seq += 1;
        python_quest(seq, method, PID, SECRET, 1_700_000_000_300 + i64::from(seq), ts, &params)
    };
    let mut quests = Vec::new();
    for (mid, mtype, msg) in
        [(900_000, 51, Py::Str("hello")), (900_001, 30, Py::Str("chat")), (900_002, 52, Py::Bin(&[0, 1, 0xff]))]
    {
        let params = vec![
            ("mtype", Py::Int(mtype)),
            ("from", Py::Int(1001)),
            ("rid", Py::Int(7001)),
            ("mid", Py::Int(mid)),
            ("msg", msg),
            ("attrs", Py::Str("")),
        ];
        quests.push(call("sendroommsg", params));
    }
    let page = vec![
        ("uid", Py::Int(1001)),
        ("rid", Py::Int(7001)),
        ("desc", Py::Bool(true)),
        ("num", Py::Int(10)),
        ("begin", Py::Int(0)),
        ("end", Py::Int(0)),
        ("lastid", Py::Int(0)),
    ];
    quests.push(call("getroommsg", page));
    let message =
        |mid| vec![("mid", Py::Int(mid)), ("from", Py::Int(1001)), ("xid", Py::Int(7001)), ("type", Py::Int(3))];
    quests.push(call("getmsg", message(900_002)));
    quests.push(call("getmsgnum", vec![("type", Py::Int(3)), ("xid", Py::Int(7001))]));
    quests.push(call("delmsg", message(900_001)));
    quests.push(call("getmsg", message(900_001)));
    let mut answers = Vec::new();
    for quest in quests {
        c.stream.write_all(&quest).await.unwrap();
        let Some(rtm_protocol::Frame::Answer(answer)) = c.read_frame().await else { panic!("an answer") };
        assert_eq!(answer.version, 0, "answered in the quest's version");
        answers.push(answer);
    }
    fn entries(payload: &[u8]) -> Vec<(String, Value<'_>)> {
        let Value::Map(map) = Value::from_msgpack(payload).unwrap() else { panic!("a map") };
        map.into_iter().map(|(k, v)| (k.as_str().unwrap().to_owned(), v)).collect()
    }
    fn get<'a>(map: &[(String, Value<'a>)], key: &str) -> Value<'a> {
        map.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap()
    }
    let map = |i: usize| entries(&answers[i].payload);
    let mtimes: Vec<Value<'_>> = (0..3).map(|i| get(&map(i), "mtime")).collect();
    // getroommsg: num, lastid, begin, end and 8-element rows, newest first.
    let page = map(3);
    assert_eq!(get(&page, "num"), Value::Int(3));
    assert_eq!((get(&page, "begin"), get(&page, "end")), (Value::Int(0), Value::Int(0)));
    let Value::Array(rows) = get(&page, "msgs") else { panic!("msgs") };
    let row = |i: usize| match &rows[i] {
        Value::Array(row) => row.clone(),
        other => panic!("a row, not {other:?}"),
    };
    assert!(
        rows.iter().all(|r| matches!(r, Value::Array(cols) if cols.len() == 8)),
        "PY skips rows whose length is not 8"
    );
    assert_eq!(row(0)[5], Value::Bin(vec![0, 1, 0xff].into()));
    assert_eq!(row(1)[5].as_str(), Some("chat"), "chat as plain text");
    assert_eq!(
        (row(2)[1].clone(), row(2)[2].clone(), row(2)[3].clone()),
        (Value::Int(1001), Value::Int(51), Value::Int(900_000))
    );
    assert_eq!(row(2)[7], mtimes[0]);
    assert_eq!(get(&page, "lastid"), row(2)[0]);
    // getmsg: id, mtype, msg, attrs, mtime.
    let info = map(4);
    assert_eq!(
        (get(&info, "mtype"), get(&info, "msg"), get(&info, "mtime")),
        (Value::Int(52), Value::Bin(vec![0, 1, 0xff].into()), mtimes[2].clone())
    );
    assert_eq!(get(&info, "id"), row(0)[0]);
    // getmsgnum: {sender, num}.
    let num = map(5);
    assert_eq!((get(&num, "sender"), get(&num, "num")), (Value::Int(1), Value::Int(3)));
    // delmsg answers the empty map; the message is gone (200070).
    assert_eq!((answers[6].status, &answers[6].payload[..]), (0, &[0x80][..]));
    assert_ne!(answers[7].status, 0);
    let error: rtm_protocol::ErrorAnswer =
        rtm_protocol::payload::decode(answers[7].encoding, &answers[7].payload).unwrap();
    assert_eq!(error.code, 200070);
    server.stop().await;
}
