//! Bad input gets the right error code and a useful `ex`, and never harms the
//! connection it came on.

use bytes::{BufMut, BytesMut};
use rtm_protocol::methods::*;
use rtm_protocol::{payload, write_quest, Encoding, ErrorAnswer};
use serde_json::json;

use crate::support::*;

/// Signs `params` (any JSON object) for `method` and returns the error answer.
async fn error_for(c: &mut Client, method: &str, params: serde_json::Value) -> ErrorAnswer {
    let auth = c.auth(method);
    let mut body = serde_json::to_value(&auth).unwrap();
    body.as_object_mut().unwrap().extend(params.as_object().unwrap().clone());
    let answer = c.call_raw(method, &body).await;
    assert_eq!(answer.status, 1, "error answers use status 1");
    decode_answer::<Empty>(&answer).unwrap_err()
}

#[tokio::test]
async fn missing_parameter_is_10009_naming_the_key() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let err = error_for(&mut c, "addroommember", json!({"rid": 1})).await;
    assert_eq!(err.code, 10009);
    assert!(err.ex.contains("'uid'"), "{}", err.ex);
    let err = error_for(&mut c, "setroominfo", json!({"rid": 1})).await;
    assert_eq!(err.code, 10009);
    let err = error_for(&mut c, "getroomcount", json!({})).await;
    assert_eq!(err.code, 10009);
    assert!(err.ex.contains("rids"), "{}", err.ex);
    server.stop().await;
}

#[tokio::test]
async fn wrong_type_is_10010_naming_the_key() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let err = error_for(&mut c, "addroommember", json!({"rid": "seven", "uid": 1})).await;
    assert_eq!(err.code, 10010);
    assert!(err.ex.contains("'rid'"), "{}", err.ex);
    let err = error_for(&mut c, "addroommembers", json!({"rid": 1, "uids": [1, true]})).await;
    assert_eq!(err.code, 10010);
    assert!(err.ex.contains("uids[1]"), "{}", err.ex);
    let err = error_for(&mut c, "setroominfo", json!({"rid": 1, "oinfo": 5})).await;
    assert_eq!(err.code, 10010);
    assert!(err.ex.contains("'oinfo'"), "{}", err.ex);
    server.stop().await;
}

#[tokio::test]
async fn limits_on_info_and_lists() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let big = "x".repeat(64 * 1024 + 1);
    let err = error_for(&mut c, "setroominfo", json!({"rid": 1, "pinfo": big})).await;
    assert_eq!(err.code, 200030);
    let many: Vec<i64> = (0..101).collect();
    let err = error_for(&mut c, "addroommembers", json!({"rid": 1, "uids": many})).await;
    assert_eq!(err.code, 200032);
    assert!(err.ex.contains("101"), "{}", err.ex);
    let err = error_for(&mut c, "getroomcount", json!({"rids": []})).await;
    assert_eq!(err.code, 200033);
    let err = error_for(&mut c, "adduserrooms", json!({"rids": [], "uid": 1})).await;
    assert_eq!(err.code, 200033);
    // The limit itself is fine.
    let hundred: Vec<i64> = (0..100).collect();
    c.call(&AddRoomMembers { rid: 1, uids: hundred }).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn limits_are_configurable() {
    let server = TestServer::start_with(|c| {
        c.limits.max_list_len = 3;
        c.limits.max_info_bytes = 4;
    })
    .await;
    let mut c = server.client().await;
    assert_eq!(c.call(&AddRoomMembers { rid: 1, uids: vec![1, 2, 3, 4] }).await.unwrap_err().code, 200032);
    assert_eq!(
        c.call(&SetRoomInfo { rid: 1, oinfo: Some("12345".into()), pinfo: None }).await.unwrap_err().code,
        200030
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_method_is_20004_with_its_name() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let answer = c.call_raw("nosuchmethod", &Empty {}).await;
    let err = decode_answer::<Empty>(&answer).unwrap_err();
    assert_eq!(err.code, 20004);
    assert!(err.ex.contains("nosuchmethod"), "{}", err.ex);
    // The connection still works.
    c.call(&AddRoomMember { rid: 1, uid: 1 }).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn oneway_quests_are_applied_but_never_answered() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let mut out = BytesMut::new();
    let auth = c.auth(AddRoomMember::NAME);
    write_quest(
        &mut out,
        Encoding::MsgPack,
        None,
        AddRoomMember::NAME,
        &Signed { auth: &auth, params: &AddRoomMember { rid: 1, uid: 5 } },
    )
    .unwrap();
    write_quest(&mut out, Encoding::MsgPack, None, "nosuchmethod", &Empty {}).unwrap();
    write_quest(&mut out, Encoding::MsgPack, None, AddRoomMember::NAME, &Empty {}).unwrap();
    c.send(&out).await;
    // The next answer is for the next twoway quest, and sees the oneway write.
    let members = c.call(&GetRoomMembers { rid: 1 }).await.unwrap();
    assert_eq!(members.uids, vec![5]);
    server.stop().await;
}

#[tokio::test]
async fn a_payload_that_is_not_a_map_is_10006_and_bad_msgpack_10003() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let answer = c.call_raw("addroommember", &[1, 2, 3]).await;
    assert_eq!(error_code(&answer), 10006);
    // A frame whose payload is not msgpack at all (0xc1 is never used).
    let mut out = BytesMut::new();
    let seq = c.next_seq();
    out.put_slice(b"FPNN\x01\x80\x01\x0d\x01\x00\x00\x00");
    out.put_u32_le(seq);
    out.put_slice(b"addroommember");
    out.put_u8(0xc1);
    c.send(&out).await;
    let answer = c.read_answer().await;
    assert_eq!(answer.seq, seq);
    assert_eq!(error_code(&answer), 10003);
    c.call(&AddRoomMember { rid: 1, uid: 1 }).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn json_quests_get_json_answers() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let auth = c.auth(AddRoomMember::NAME);
    let mut out = BytesMut::new();
    let seq = c.encode_raw(
        &mut out,
        Encoding::Json,
        AddRoomMember::NAME,
        &Signed { auth: &auth, params: &AddRoomMember { rid: 1, uid: 9 } },
    );
    c.send(&out).await;
    let answer = c.read_answer().await;
    assert_eq!((answer.seq, answer.status, answer.encoding), (seq, 0, Encoding::Json));
    assert_eq!(&answer.payload[..], b"{}");

    let auth = c.auth(GetRoomCount::NAME);
    let mut out = BytesMut::new();
    c.encode_raw(
        &mut out,
        Encoding::Json,
        GetRoomCount::NAME,
        &Signed { auth: &auth, params: &GetRoomCount::new(vec![1]) },
    );
    c.send(&out).await;
    let answer = c.read_answer().await;
    assert_eq!(answer.encoding, Encoding::Json);
    assert_eq!(&answer.payload[..], br#"{"cn":{"1":1}}"#);

    // Errors come back in JSON too.
    let mut out = BytesMut::new();
    c.encode_raw(&mut out, Encoding::Json, "nosuchmethod", &json!({}));
    c.send(&out).await;
    let answer = c.read_answer().await;
    assert_eq!((answer.status, answer.encoding), (1, Encoding::Json));
    let err: ErrorAnswer = payload::decode(Encoding::Json, &answer.payload).unwrap();
    assert_eq!(err.code, 20004);
    server.stop().await;
}
