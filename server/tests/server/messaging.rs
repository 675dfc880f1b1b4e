//! Room messages over real TCP: sends from clients and from the server
//! API, delivery, the rules that refuse a send or skip a receiver, retries,
//! ordering and slow sessions.

use std::time::Duration;

use rtm_protocol::client::{self as c, ChatBody, MessageBody, PushRoomMsg};
use rtm_protocol::methods::*;
use rtm_protocol::payload;

use crate::client_gate::Player;
use crate::support::*;

/// A client's text message (mtype 51).
pub fn text(rid: i64, mid: i64, msg: &str) -> c::SendRoomMsg {
    c::SendRoomMsg {
        rid,
        mid,
        mtype: 51,
        msg: MessageBody::Text(msg.into()),
        attrs: String::new(),
        strategyid: None,
        check_params: None,
    }
}

pub(crate) async fn next_message(player: &mut Player) -> PushRoomMsg {
    let push = player.push("pushroommsg").await;
    assert!(push.seq.is_some(), "pushroommsg is twoway");
    payload::decode(push.encoding, &push.payload).unwrap()
}

/// Whether `player` gets a room message within half a second.
pub(crate) async fn gets_message(player: &mut Player) -> bool {
    tokio::time::timeout(Duration::from_millis(500), player.push("pushroommsg")).await.is_ok()
}

pub(crate) async fn in_room(server: &TestServer, uid: i64, rid: i64) -> Player {
    let mut player = Player::login(server, uid).await;
    player.call(&c::EnterRoom { rid }).await.unwrap();
    player
}

#[tokio::test]
async fn messages_reach_the_other_members_as_sent() {
    let server = TestServer::start().await;
    let mut alice = in_room(&server, 1, 7).await;
    let mut alice_phone = Player::login(&server, 1).await;
    let mut bob = in_room(&server, 2, 7).await;
    let sent = alice.call(&text(7, 100, "hello")).await.unwrap();
    for receiver in [&mut bob, &mut alice_phone] {
        let push = next_message(receiver).await;
        assert_eq!((push.from, push.rid, push.mid, push.mtype), (1, 7, 100, 51));
        assert_eq!((push.msg, push.mtime), (MessageBody::Text("hello".into()), sent.mtime));
    }
    assert!(!gets_message(&mut alice).await, "not to the sending session");
    let binary = c::SendRoomMsg { msg: MessageBody::Binary(vec![0, 1, 0xff]), ..text(7, 101, "") };
    bob.call(&binary).await.unwrap();
    assert_eq!(next_message(&mut alice).await.msg, MessageBody::Binary(vec![0, 1, 0xff]), "bin stays bin");
    server.stop().await;
}

#[tokio::test]
async fn chat_is_a_map_for_clients_and_text_for_backends() {
    let server = TestServer::start().await;
    let mut listener = server.client().await;
    listener.call(&SetListen { room: Some(true), ..SetListen::default() }).await.unwrap();
    let mut alice = in_room(&server, 1, 7).await;
    let mut bob = in_room(&server, 2, 7).await;
    alice.call(&c::SendRoomMsg { mtype: 30, ..text(7, 1, "hi") }).await.unwrap();
    assert_eq!(next_message(&mut bob).await.msg, MessageBody::Chat(ChatBody::untranslated("hi")));
    let pushed = loop {
        let Some(rtm_protocol::Frame::Quest(quest)) = listener.read_frame().await else { panic!("closed") };
        if &quest.method[..] == b"pushroommsg" {
            break payload::decode::<PushRoomMsg>(quest.encoding, &quest.payload).unwrap();
        }
    };
    assert_eq!((pushed.from, pushed.msg), (1, MessageBody::Text("hi".into())), "backends get plain text");
    server.stop().await;
}

#[tokio::test]
async fn the_server_api_speaks_as_anyone_and_checks_only_sizes() {
    let server = TestServer::start().await;
    let mut api = server.client().await;
    let mut bob = in_room(&server, 2, 7).await;
    let send = |mtype, msg: &str| SendRoomMsg {
        mtype,
        from: 9999,
        rid: 7,
        mid: 5,
        msg: MessageBody::Text(msg.into()),
        attrs: "{}".into(),
    };
    let mtime = api.call(&send(6, "system notice")).await.unwrap().mtime;
    let push = next_message(&mut bob).await;
    assert_eq!((push.from, push.mtype, push.mtime, push.attrs.as_str()), (9999, 6, mtime, "{}"));
    assert_eq!(api.call(&send(6, "system notice")).await.unwrap().mtime, mtime, "a retry answers the first mtime");
    assert!(!gets_message(&mut bob).await, "and is not delivered twice");
    assert_eq!(api.call(&send(6, "another text")).await.unwrap_err().code, 200053, "same mid, other content");
    let long = "x".repeat(20_481);
    assert_eq!(api.call(&SendRoomMsg { mid: 6, ..send(51, &long) }).await.unwrap_err().code, 200030);
    assert_eq!(api.call(&SendRoomMsg { mid: 7, ..send(0, "x") }).await.unwrap_err().code, 200005);
    server.stop().await;
}

#[tokio::test]
async fn client_sends_are_refused_with_their_codes() {
    let server = TestServer::start().await;
    let mut api = server.client().await;
    let mut alice = in_room(&server, 1, 7).await;
    let mut bob = in_room(&server, 2, 7).await;
    assert_eq!(alice.call(&text(8, 1, "x")).await.unwrap_err().code, 200040, "not a member");
    assert_eq!(alice.call(&c::SendRoomMsg { mtype: 40, ..text(7, 2, "x") }).await.unwrap_err().code, 200005);
    assert_eq!(alice.call(&c::SendRoomMsg { mtype: 6, ..text(7, 3, "x") }).await.unwrap_err().code, 200005);
    let big_attrs = c::SendRoomMsg { attrs: "a".repeat(2_049), ..text(7, 4, "x") };
    assert_eq!(alice.call(&big_attrs).await.unwrap_err().code, 200030);
    // A mute switched on and off mid-conversation bites both ways.
    api.call(&AddRoomBan { rid: Some(7), uid: 1, btime: 0 }).await.unwrap();
    assert_eq!(alice.call(&text(7, 5, "muted")).await.unwrap_err().code, 200045);
    bob.call(&text(7, 6, "can you hear me")).await.unwrap();
    assert!(!gets_message(&mut alice).await, "a muted member does not receive");
    api.call(&RemoveRoomBan { rid: Some(7), uid: 1 }).await.unwrap();
    alice.call(&text(7, 7, "back")).await.unwrap();
    assert_eq!(next_message(&mut bob).await.mid, 7);
    api.call(&AddRoomBan { rid: None, uid: 2, btime: 0 }).await.unwrap();
    assert_eq!(bob.call(&text(7, 8, "x")).await.unwrap_err().code, 200045, "an all-rooms mute");
    api.call(&RemoveRoomBan { rid: None, uid: 2 }).await.unwrap();
    // Modes: receive only cannot send; send only does not receive.
    api.call(&SetMemberMode { rid: 7, uid: 1, mode: Mode::ReceiveOnly }).await.unwrap();
    assert_eq!(alice.call(&text(7, 9, "x")).await.unwrap_err().code, 200021);
    api.call(&SetMemberMode { rid: 7, uid: 1, mode: Mode::SendOnly }).await.unwrap();
    alice.call(&text(7, 10, "speaking")).await.unwrap();
    assert_eq!(next_message(&mut bob).await.mid, 10);
    bob.call(&text(7, 11, "hello?")).await.unwrap();
    assert!(!gets_message(&mut alice).await, "send only does not receive");
    // A consumer receives only.
    api.call(&UpsertRoomMembers { rid: 7, members: vec![MemberSpec::new(2, Role::Consumer)] }).await.unwrap();
    assert_eq!(bob.call(&text(7, 12, "x")).await.unwrap_err().code, 200021);
    server.stop().await;
}

#[tokio::test]
async fn no_delivery_after_leaving_removal_or_release() {
    let server = TestServer::start().await;
    let mut api = server.client().await;
    let mut sender = in_room(&server, 1, 7).await;
    let mut leaver = in_room(&server, 2, 7).await;
    let mut removed = in_room(&server, 3, 7).await;
    leaver.call(&c::LeaveRoom { rid: 7 }).await.unwrap();
    api.call(&DelRoomMember { rid: 7, uid: 3 }).await.unwrap();
    sender.call(&text(7, 1, "anyone?")).await.unwrap();
    assert!(!gets_message(&mut leaver).await);
    assert!(!gets_message(&mut removed).await);
    api.call(&DeleteRoom { rid: 7 }).await.unwrap();
    assert_eq!(sender.call(&text(7, 2, "x")).await.unwrap_err().code, 200040, "released");
    server.stop().await;
}

#[tokio::test]
async fn every_receiver_sees_one_order() {
    let server = TestServer::start_with(|c| c.limits.client_messages_per_second = 0).await;
    let mut senders = vec![in_room(&server, 1, 7).await, in_room(&server, 2, 7).await];
    let mut receivers = Vec::new();
    for uid in 10..16 {
        receivers.push(in_room(&server, uid, 7).await);
    }
    let tasks: Vec<_> = senders
        .drain(..)
        .enumerate()
        .map(|(i, mut sender)| {
            tokio::spawn(async move {
                for k in 0..50 {
                    sender.call(&text(7, (i as i64 + 1) * 1000 + k, "m")).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut orders = Vec::new();
    for receiver in &mut receivers {
        let mut order = Vec::new();
        for _ in 0..100 {
            let push = next_message(receiver).await;
            order.push((push.from, push.mid));
        }
        orders.push(order);
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "every receiver saw the same order");
    let from_first: Vec<i64> = orders[0].iter().filter(|(from, _)| *from == 1).map(|(_, mid)| *mid).collect();
    assert_eq!(from_first, (1000..1050).collect::<Vec<_>>(), "each sender's own order is kept");
    server.stop().await;
}

#[tokio::test]
async fn a_slow_session_is_cut_off_and_the_others_receive_everything() {
    let server = TestServer::start_with(|c| c.sessions.outbox_len = 20).await;
    let mut api = server.client().await;
    let mut reader = in_room(&server, 2, 7).await;
    let mut stalled = in_room(&server, 3, 7).await;
    // `stalled` never reads again: its socket fills, then its outbox.
    let mut sent = 0;
    for mid in 0..3_000 {
        let big = "x".repeat(8_000);
        let send = SendRoomMsg { mtype: 51, from: 1, rid: 7, mid, msg: MessageBody::Text(big), attrs: String::new() };
        api.call(&send).await.unwrap();
        sent += 1;
        assert_eq!(next_message(&mut reader).await.mid, mid, "the reader gets every message, in order");
    }
    assert_eq!(sent, 3_000);
    let closed = tokio::time::timeout(Duration::from_secs(10), stalled.closed()).await;
    assert!(closed.is_ok(), "the stalled session was closed");
    server.stop().await;
}

#[tokio::test]
async fn sessions_logins_and_messages_are_counted() {
    let server = TestServer::start_full(|_| {}, true, false).await;
    let mut alice = in_room(&server, 1, 7).await;
    let mut bob = in_room(&server, 2, 7).await;
    alice.call(&text(7, 1, "hi")).await.unwrap();
    next_message(&mut bob).await;
    let mut refused = Player::connect(server.client_addr).await;
    let bad = c::Auth { pid: PID, uid: 3, token: "nope".into(), version: None, lang: None, attrs: None, device: None };
    assert!(!refused.call(&bad).await.unwrap().ok);
    let (_, text) = server.http_get("/metrics").await;
    let metrics = parse_exposition(&text);
    assert_eq!(metrics["rtm_client_sessions"], 2.0);
    assert_eq!(metrics[r#"rtm_logins_total{result="ok"}"#], 2.0);
    assert_eq!(metrics[r#"rtm_logins_total{result="refused"}"#], 1.0);
    assert_eq!(metrics["rtm_messages_sent_total"], 1.0);
    assert_eq!(metrics["rtm_message_pushes_total"], 1.0);
    assert_eq!(metrics["rtm_message_delivery_seconds_count"], 1.0);
    assert_eq!(metrics[r#"rtm_quests_total{code="0",method="client.sendroommsg"}"#], 1.0);
    server.stop().await;
}

#[tokio::test]
async fn a_user_sending_too_fast_is_refused() {
    let server = TestServer::start_with(|c| c.limits.client_messages_per_second = 3).await;
    let mut alice = in_room(&server, 1, 7).await;
    let mut alice_phone = Player::login(&server, 1).await;
    for mid in 0..3 {
        alice.call(&text(7, mid, "x")).await.unwrap();
    }
    let err = alice_phone.call(&text(7, 3, "x")).await.unwrap_err();
    assert_eq!(err.code, 200010, "the rate is the user's, over all its sessions: {}", err.ex);
    tokio::time::sleep(Duration::from_millis(400)).await;
    alice.call(&text(7, 4, "x")).await.expect("the bucket refills");
    server.stop().await;
}
