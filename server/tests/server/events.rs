//! Room events over real TCP: a listener connection subscribes, another
//! connection (or the server itself) changes rooms, and the listener
//! receives `pushevent` quests in order.

use std::time::Duration;

use bytes::BytesMut;
use rtm_protocol::methods::*;
use rtm_protocol::{payload, Frame};
use serde_json::{json, Value as Json};

use crate::support::*;

/// The next `pushevent` on a listening connection (pings are skipped).
pub(crate) async fn next_event(listener: &mut Client) -> (String, i64, Json) {
    loop {
        match listener.read_frame().await {
            Some(Frame::Quest(quest)) if &quest.method[..] == b"pushevent" => {
                assert!(quest.seq.is_none(), "events are oneway quests");
                let event: PushEvent = payload::decode(quest.encoding, &quest.payload).unwrap();
                assert_eq!((event.pid, event.endpoint.as_str()), (listener.pid, ""));
                assert!(event.time > 0);
                let data: Json = serde_json::from_str(&event.data).unwrap();
                return (event.event, event.uid, data);
            }
            Some(Frame::Quest(quest)) if &quest.method[..] == b"ping" => {}
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

async fn listen_to_everything(server: &TestServer) -> Client {
    let mut listener = server.client().await;
    listener.call(&SetListen { room: Some(true), ev: Some(true), ..SetListen::default() }).await.unwrap();
    listener
}

#[tokio::test]
async fn a_listener_sees_a_scripted_room_life_in_order() {
    let server = TestServer::start().await;
    let mut listener = listen_to_everything(&server).await;
    let mut api = server.client().await;
    api.call(&CreateRoom { rid: Some(5), release_threshold: Some(2), ..CreateRoom::default() }).await.unwrap();
    api.call(&AddRoomMember { rid: 5, uid: 1 }).await.unwrap();
    api.call(&AddRoomMember { rid: 5, uid: 1 }).await.unwrap(); // no change, no event
    let presenter = vec![MemberSpec::new(2, Role::Presenter)];
    api.call(&UpsertRoomMembers { rid: 5, members: presenter }).await.unwrap();
    api.call(&SetMemberMode { rid: 5, uid: 2, mode: Mode::Neither }).await.unwrap();
    api.call(&SetRoomInfo { rid: 5, oinfo: Some("hello".into()), pinfo: None }).await.unwrap();
    api.call(&AddRoomBan { rid: Some(5), uid: 1, btime: 1 }).await.unwrap();

    let mut events = Vec::new();
    for _ in 0..6 {
        events.push(next_event(&mut listener).await);
    }
    // The ban expires by itself about a second later.
    events.push(next_event(&mut listener).await);
    api.call(&DelRoomMember { rid: 5, uid: 2 }).await.unwrap(); // below the threshold of 2
    events.push(next_event(&mut listener).await);
    events.push(next_event(&mut listener).await);

    let names: Vec<(&str, i64)> = events.iter().map(|(name, uid, _)| (name.as_str(), *uid)).collect();
    assert_eq!(
        names,
        vec![
            ("room_created", 0),
            ("member_joined", 1),
            ("member_joined", 2),
            ("member_updated", 2),
            ("info_changed", 0),
            ("ban_added", 1),
            ("ban_expired", 1),
            ("member_left", 2),
            ("room_released", 0),
        ]
    );
    let data: Vec<&Json> = events.iter().map(|(_, _, data)| data).collect();
    assert_eq!(data[0]["release_threshold"], 2);
    assert_eq!(*data[1], json!({"rid": 5, "role": "attendee", "mode": 1}));
    assert_eq!(*data[2], json!({"rid": 5, "role": "presenter", "mode": 1}));
    assert_eq!(*data[3], json!({"rid": 5, "role": "presenter", "mode": 4}));
    assert_eq!(*data[4], json!({"rid": 5, "oinfo": "hello"}));
    assert_eq!((data[5]["scope"].as_str(), data[5]["rid"].as_i64()), (Some("room"), Some(5)));
    assert_eq!(data[6]["scope"], "room");
    assert_eq!(data[8]["reason"], "threshold");
    assert!(data[8]["begin_time"].as_i64().unwrap() > 0, "it began when the second member joined");
    assert!(data[8]["end_time"].as_i64().unwrap() >= data[8]["begin_time"].as_i64().unwrap());
    server.stop().await;
}

#[tokio::test]
async fn filters_pick_rooms_users_and_names() {
    let server = TestServer::start().await;
    let mut listener = server.client().await;
    let joins = Some(vec!["member_joined".to_owned()]);
    listener.call(&AddListen { rids: Some(vec![1]), events: joins.clone(), ..AddListen::default() }).await.unwrap();
    listener.call(&AddListen { uids: Some(vec![9]), ..AddListen::default() }).await.unwrap();
    let unknown = AddListen { events: Some(vec!["logon".into()]), ..AddListen::default() };
    let err = listener.call(&unknown).await.unwrap_err();
    assert_eq!(err.code, 200034);
    assert!(err.ex.contains("room_released"), "the error lists the event names: {}", err.ex);
    let mut api = server.client().await;
    api.call(&AddRoomMember { rid: 2, uid: 1 }).await.unwrap(); // other room, other user
    api.call(&SetRoomInfo { rid: 1, oinfo: Some("x".into()), pinfo: None }).await.unwrap(); // not listened to
    api.call(&AddRoomMember { rid: 2, uid: 9 }).await.unwrap(); // its user is listened to
    api.call(&AddRoomMember { rid: 1, uid: 3 }).await.unwrap(); // its room is listened to
    assert_eq!(next_event(&mut listener).await.1, 9);
    assert_eq!(next_event(&mut listener).await.1, 3);
    listener.call(&RemoveListen { rids: Some(vec![1]), ..RemoveListen::default() }).await.unwrap();
    api.call(&AddRoomMember { rid: 1, uid: 4 }).await.unwrap();
    api.call(&AddRoomMember { rid: 3, uid: 9 }).await.unwrap();
    assert_eq!(
        next_event(&mut listener).await,
        ("member_joined".into(), 9, json!({"rid": 3, "role": "attendee", "mode": 1}))
    );
    // Replacing the subscription: every event of room 3 only.
    let only_room_3 = SetListen { rids: Some(vec![3]), ev: Some(true), ..SetListen::default() };
    listener.call(&only_room_3).await.unwrap();
    api.call(&AddRoomMember { rid: 1, uid: 9 }).await.unwrap();
    api.call(&DelRoomMember { rid: 3, uid: 9 }).await.unwrap();
    assert_eq!(next_event(&mut listener).await.0, "member_left");
    server.stop().await;
}

#[tokio::test]
async fn other_projects_never_see_the_events() {
    let server = TestServer::start_with(|c| {
        c.projects.push(rtm_server::config::ProjectConfig::new(2, "other"));
    })
    .await;
    let mut other = server.client_for(2, "other").await;
    other.call(&SetListen { room: Some(true), ev: Some(true), ..SetListen::default() }).await.unwrap();
    let mut listener = listen_to_everything(&server).await;
    let mut api = server.client().await;
    api.call(&AddRoomMember { rid: 1, uid: 1 }).await.unwrap();
    assert_eq!(next_event(&mut listener).await.0, "member_joined");
    let mut api2 = server.client_for(2, "other").await;
    api2.call(&AddRoomMember { rid: 1, uid: 2 }).await.unwrap();
    assert_eq!(next_event(&mut other).await.1, 2, "project 2's listener sees only project 2");
    server.stop().await;
}

#[tokio::test]
async fn a_listener_that_does_not_read_is_disconnected_and_counted() {
    let server = TestServer::start_full(|c| c.events.listener_queue = 8, true, false).await;
    let mut slow = server.client().await;
    let infos = SetListen { events: Some(vec!["info_changed".into()]), ..SetListen::default() };
    slow.call(&infos).await.unwrap();
    // `slow` now stops reading. Big events fill the socket buffers, then its queue.
    let mut api = server.client().await;
    let big = "x".repeat(60_000);
    let mut closed = false;
    for round in 0..2_000 {
        let oinfo = format!("{round}{big}");
        api.call(&SetRoomInfo { rid: 1, oinfo: Some(oinfo), pinfo: None }).await.unwrap();
        let (_, metrics) = server.http_get("/metrics").await;
        if parse_exposition(&metrics).get("rtm_listeners_dropped_total").copied() == Some(1.0) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow listener was dropped");
    // The connection is closed: reading drains what was sent, then ends.
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = BytesMut::with_capacity(1 << 20);
        loop {
            buf.clear();
            match tokio::io::AsyncReadExt::read_buf(&mut slow.stream, &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the server closed the slow listener's connection");
    // Everyone else carries on.
    api.call(&AddRoomMember { rid: 1, uid: 1 }).await.unwrap();
    let (_, metrics) = server.http_get("/metrics").await;
    assert_eq!(parse_exposition(&metrics).get("rtm_listeners").copied(), Some(0.0));
    server.stop().await;
}

#[tokio::test]
async fn a_room_released_while_down_is_announced_to_the_first_listener() {
    let dir = std::env::temp_dir().join(format!("rtm-events-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let restartable = Restartable::new(&dir);

    let server = TestServer::start_full(restartable.adjust(), false, false).await;
    let mut api = server.client().await;
    // Two seconds, not one: the server's "now" may already be in the next second.
    let ends = now_secs() + 2;
    api.call(&CreateRoom { rid: Some(10), valid_until: Some(ends), ..CreateRoom::default() }).await.unwrap();
    drop(api);
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(2_300)).await;

    let server = TestServer::start_full(restartable.adjust(), false, false).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // released at start-up, before anyone listens
    let mut listener = server.client().await;
    let released = SetListen { events: Some(vec!["room_released".into()]), ..SetListen::default() };
    listener.call(&released).await.unwrap();
    let (name, _, data) = next_event(&mut listener).await;
    assert_eq!(
        (name.as_str(), data["rid"].as_i64(), data["reason"].as_str()),
        ("room_released", Some(10), Some("expired"))
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn events_are_pushed_in_the_listeners_encoding() {
    let server = TestServer::start().await;
    let mut listener = server.client().await;
    let mut out = BytesMut::new();
    let auth = listener.auth("setlisten");
    let params = SetListen { ev: Some(true), ..SetListen::default() };
    listener.encode_raw(&mut out, rtm_protocol::Encoding::Json, "setlisten", &Signed { auth: &auth, params: &params });
    listener.send(&out).await;
    assert_eq!(listener.read_answer().await.status, 0);
    let mut api = server.client().await;
    api.call(&AddRoomMember { rid: 1, uid: 1 }).await.unwrap();
    match listener.read_frame().await {
        Some(Frame::Quest(quest)) => {
            assert_eq!(quest.encoding, rtm_protocol::Encoding::Json);
            let text = std::str::from_utf8(&quest.payload).unwrap();
            assert!(text.starts_with(r#"{"pid":"#), "{text}");
        }
        other => panic!("expected a push, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn quiet_listeners_are_pinged_and_stay_open_while_they_answer() {
    let server = TestServer::start_with(|c| c.gates.server.idle_timeout_secs = 3).await;
    let mut listener = listen_to_everything(&server).await;
    let mut silent = listen_to_everything(&server).await;
    let until = tokio::time::Instant::now() + Duration::from_millis(4_500);
    let mut pings = 0;
    while tokio::time::Instant::now() < until {
        let frame = tokio::time::timeout_at(until, listener.read_frame()).await;
        let Ok(Some(Frame::Quest(ping))) = frame else { continue };
        assert_eq!((&ping.method[..], ping.seq.is_some()), (&b"ping"[..], true), "a twoway ping");
        pings += 1;
        let mut out = BytesMut::new();
        rtm_protocol::write_answer(&mut out, ping.version, ping.encoding, ping.seq.unwrap(), 0, &Empty {}).unwrap();
        listener.send(&out).await;
    }
    assert!(pings >= 3, "pinged every second (a third of the idle timeout), got {pings}");
    listener.call(&AddListen { uids: Some(vec![1]), ..AddListen::default() }).await.unwrap();
    // The silent one never answered: closed by the idle timeout.
    loop {
        match silent.read_frame().await {
            Some(Frame::Quest(_)) => {}
            None => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    server.stop().await;
}
