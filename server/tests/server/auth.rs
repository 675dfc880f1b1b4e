//! Signed server-API auth: pid, sign, time window, replay and rate limit.

use bytes::BytesMut;
use rtm_protocol::methods::*;
use rtm_protocol::Encoding;
use serde_json::json;

use crate::support::*;

async fn call_with(c: &mut Client, auth: &ServerAuth, params: &AddRoomMember) -> Option<i64> {
    let answer = c.call_raw(AddRoomMember::NAME, &Signed { auth, params }).await;
    (answer.status != 0).then(|| error_code(&answer))
}

#[tokio::test]
async fn unknown_pid_and_bad_sign_are_200002() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let params = AddRoomMember { rid: 1, uid: 1 };
    let unknown = ServerAuth::new(4242, SECRET, 1, AddRoomMember::NAME, now_secs());
    assert_eq!(call_with(&mut c, &unknown, &params).await, Some(200002));
    let wrong_secret = ServerAuth::new(PID, "not-the-secret", 2, AddRoomMember::NAME, now_secs());
    assert_eq!(call_with(&mut c, &wrong_secret, &params).await, Some(200002));
    let other_method = ServerAuth::new(PID, SECRET, 3, "delroommember", now_secs());
    assert_eq!(call_with(&mut c, &other_method, &params).await, Some(200002));
    let mut tampered = ServerAuth::new(PID, SECRET, 4, AddRoomMember::NAME, now_secs());
    tampered.salt += 1;
    assert_eq!(call_with(&mut c, &tampered, &params).await, Some(200002));
    // Nothing was applied.
    assert_eq!(c.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, Vec::<i64>::new());
    server.stop().await;
}

#[tokio::test]
async fn ts_outside_the_window_is_200008() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let params = AddRoomMember { rid: 1, uid: 1 };
    for (salt, skew, expected) in [(1, -301, Some(200008)), (2, 301, Some(200008)), (3, -290, None), (4, 290, None)] {
        let auth = ServerAuth::new(PID, SECRET, salt, AddRoomMember::NAME, now_secs() + skew);
        assert_eq!(call_with(&mut c, &auth, &params).await, expected, "skew {skew}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_time_window_is_configurable() {
    let server = TestServer::start_with(|c| c.auth.time_window_secs = 10).await;
    let mut c = server.client().await;
    let auth = ServerAuth::new(PID, SECRET, 1, AddRoomMember::NAME, now_secs() - 30);
    assert_eq!(call_with(&mut c, &auth, &AddRoomMember { rid: 1, uid: 1 }).await, Some(200008));
    server.stop().await;
}

#[tokio::test]
async fn a_replay_on_another_connection_is_200006() {
    let server = TestServer::start().await;
    let mut first = server.client().await;
    let mut second = server.client().await;
    let auth = ServerAuth::new(PID, SECRET, 77, AddRoomMember::NAME, now_secs());
    let params = AddRoomMember { rid: 1, uid: 1 };
    assert_eq!(call_with(&mut first, &auth, &params).await, None);
    let answer = second.call_raw(AddRoomMember::NAME, &Signed { auth: &auth, params: &params }).await;
    assert_eq!(error_code(&answer), 200006);
    server.stop().await;
}

#[tokio::test]
async fn identical_quests_on_the_same_connection_pass() {
    // The Python SDK reuses one salt for every call in the same millisecond,
    // so a burst of identical calls is legitimate on one connection.
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let auth = ServerAuth::new(PID, SECRET, 123, AddRoomMember::NAME, now_secs());
    let params = AddRoomMember { rid: 1, uid: 1 };
    for _ in 0..5 {
        assert_eq!(call_with(&mut c, &auth, &params).await, None);
    }
    server.stop().await;
}

#[tokio::test]
async fn different_quests_sharing_a_salt_pass_on_any_connection() {
    let server = TestServer::start().await;
    let ts = now_secs();
    for uid in 0..5 {
        let mut c = server.client().await;
        let auth = ServerAuth::new(PID, SECRET, 999, AddRoomMember::NAME, ts);
        assert_eq!(call_with(&mut c, &auth, &AddRoomMember { rid: 1, uid }).await, None);
        // A different method with the same salt is a different quest too.
        let auth = ServerAuth::new(PID, SECRET, 999, GetRoomCount::NAME, ts);
        let answer =
            c.call_raw(GetRoomCount::NAME, &Signed { auth: &auth, params: &GetRoomCount::new(vec![1, uid]) }).await;
        assert_eq!(decode_answer::<RoomCounts>(&answer).unwrap().to_map()[&1], uid as i32 + 1);
    }
    server.stop().await;
}

#[tokio::test]
async fn missing_auth_keys_are_10009_naming_the_key() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let answer = c.call_raw("addroommember", &json!({"rid": 1, "uid": 1, "sign": "x", "salt": 1, "ts": 1})).await;
    let err = decode_answer::<Empty>(&answer).unwrap_err();
    assert_eq!(err.code, 10009);
    assert!(err.ex.contains("'pid'"), "{}", err.ex);
    let answer = c.call_raw("addroommember", &json!({"rid": 1, "uid": 1, "pid": PID, "salt": 1, "ts": 1})).await;
    let err = decode_answer::<Empty>(&answer).unwrap_err();
    assert_eq!(err.code, 10009);
    assert!(err.ex.contains("'sign'"), "{}", err.ex);
    server.stop().await;
}

#[tokio::test]
async fn the_rate_limit_is_per_project_and_off_by_default() {
    let server = TestServer::start_with(|c| {
        c.rate_limit.quests_per_second = 5;
        c.rate_limit.burst = 5;
    })
    .await;
    let mut a = server.client().await;
    let mut out = BytesMut::new();
    for uid in 0..10 {
        a.encode_signed(&mut out, &AddRoomMember { rid: 1, uid });
    }
    a.send(&out).await;
    let mut codes = Vec::new();
    for _ in 0..10 {
        let answer = a.read_answer().await;
        codes.push(if answer.status == 0 { 0 } else { error_code(&answer) });
    }
    assert_eq!(codes.iter().filter(|&&c| c == 0).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 200010).count(), 5, "{codes:?}");
    // Another project has its own budget.
    let mut b = server.client_for(OTHER_PID, OTHER_SECRET).await;
    b.call(&AddRoomMember { rid: 1, uid: 1 }).await.unwrap();
    server.stop().await;

    let unlimited = TestServer::start().await;
    let mut c = unlimited.client().await;
    let mut out = BytesMut::new();
    for uid in 0..200 {
        c.encode_raw(&mut out, Encoding::MsgPack, "*ping", &Empty {});
        c.encode_signed(&mut out, &AddRoomMember { rid: 1, uid });
    }
    c.send(&out).await;
    for _ in 0..400 {
        assert_eq!(c.read_answer().await.status, 0);
    }
    unlimited.stop().await;
}
