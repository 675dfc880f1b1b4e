//! Room message history over real TCP: paging both ways, filters, rows
//! arriving while paging, deletes, single messages, counts, who may read,
//! and the exact row layout the RTM SDKs parse.

use rtm_protocol::client::{self as c, MessageBody};
use rtm_protocol::methods::*;
use rtm_protocol::{ErrorCode, Value};

use crate::client_gate::Player;
use crate::support::*;

fn send(rid: i64, mid: i64, mtype: i64, msg: MessageBody) -> c::SendRoomMsg {
    c::SendRoomMsg { rid, mid, mtype, msg, attrs: String::new(), strategyid: None, check_params: None }
}

fn page(rid: i64, desc: bool, num: i64, lastid: i64, mtypes: Option<Vec<i64>>) -> c::GetRoomMsg {
    c::GetRoomMsg { rid, desc, num, begin: 0, end: 0, lastid, mtypes }
}

/// Every row of room `rid`, paging `num` at a time as an SDK does.
async fn all_rows(player: &mut Player, rid: i64, desc: bool, num: i64, mtypes: Option<Vec<i64>>) -> Vec<HistoryRow> {
    let mut rows = Vec::new();
    let mut lastid = 0;
    loop {
        let answer = player.call(&page(rid, desc, num, lastid, mtypes.clone())).await.unwrap();
        assert_eq!(answer.num as usize, answer.msgs.len());
        rows.extend(answer.msgs);
        if answer.num < num {
            return rows;
        }
        lastid = answer.lastid;
    }
}

fn mids(rows: &[HistoryRow]) -> Vec<i64> {
    rows.iter().map(|row| row.mid).collect()
}

/// A server whose clients may send as fast as the tests do.
async fn unlimited() -> TestServer {
    TestServer::start_with(|c| c.limits.client_messages_per_second = 0).await
}

async fn in_room(server: &TestServer, uid: i64, rid: i64) -> Player {
    let mut player = Player::login(server, uid).await;
    player.call(&c::EnterRoom { rid }).await.unwrap();
    player
}

#[tokio::test]
async fn pages_go_both_ways_with_and_without_mtypes() {
    let server = unlimited().await;
    let mut alice = in_room(&server, 1, 7).await;
    let mut sent = Vec::new();
    for mid in 1..=25 {
        let mtype = if mid % 3 == 0 { 52 } else { 51 };
        let answer = alice.call(&send(7, mid, mtype, MessageBody::Text(format!("m{mid}")))).await.unwrap();
        sent.push((mid, mtype, answer.mtime));
    }
    let forward = all_rows(&mut alice, 7, false, 10, None).await;
    assert_eq!(mids(&forward), (1..=25).collect::<Vec<_>>());
    assert!(forward.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    for (row, (mid, mtype, mtime)) in forward.iter().zip(&sent) {
        assert_eq!((row.mid, row.mtype, row.mtime, row.from, row.deleted), (*mid, *mtype, *mtime, 1, false));
        assert_eq!(row.msg, MessageBody::Text(format!("m{mid}")));
    }
    let backward = all_rows(&mut alice, 7, true, 7, None).await;
    assert_eq!(mids(&backward), (1..=25).rev().collect::<Vec<_>>());
    let only_52 = all_rows(&mut alice, 7, true, 4, Some(vec![52])).await;
    assert_eq!(mids(&only_52), vec![24, 21, 18, 15, 12, 9, 6, 3]);

    // `num` above 20 is cut to 20; below 1 is refused.
    assert_eq!(alice.call(&page(7, false, 500, 0, None)).await.unwrap().num, 20);
    let err = alice.call(&page(7, false, 0, 0, None)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameter.code(), "{}", err.ex);

    // `begin`/`end` bound the rows by mtime, inclusive, and are echoed back.
    let (begin, end) = (sent[4].2, sent[9].2);
    let bounded = c::GetRoomMsg { begin, end, ..page(7, false, 20, 0, None) };
    let answer = alice.call(&bounded).await.unwrap();
    assert_eq!((answer.begin, answer.end), (begin, end));
    assert!(answer.msgs.iter().all(|row| (begin..=end).contains(&row.mtime)));
    assert!(mids(&answer.msgs).contains(&5) && mids(&answer.msgs).contains(&10));
    let empty = alice.call(&page(8, false, 10, 0, None)).await.unwrap_err();
    assert_eq!(empty.code, ErrorCode::NotInRoom.code());
    server.stop().await;
}

#[tokio::test]
async fn rows_arriving_while_paging_neither_skip_nor_repeat_the_older_ones() {
    let server = unlimited().await;
    let mut alice = in_room(&server, 1, 7).await;
    let mut bob = in_room(&server, 2, 7).await;
    for mid in 1..=30 {
        alice.call(&send(7, mid, 51, MessageBody::Text("x".into()))).await.unwrap();
    }
    for desc in [true, false] {
        let mut seen = Vec::new();
        let mut lastid = 0;
        let mut extra = 1000;
        loop {
            let answer = bob.call(&page(7, desc, 6, lastid, None)).await.unwrap();
            seen.extend(mids(&answer.msgs));
            // New messages between pages.
            for _ in 0..3 {
                extra += 1;
                alice.call(&send(7, extra, 51, MessageBody::Text("new".into()))).await.unwrap();
            }
            if answer.num < 6 {
                break;
            }
            lastid = answer.lastid;
        }
        let old: Vec<i64> = seen.iter().copied().filter(|mid| *mid <= 30).collect();
        let expected: Vec<i64> = if desc { (1..=30).rev().collect() } else { (1..=30).collect() };
        assert_eq!(old, expected, "desc = {desc}");
        let mut unique = seen.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no row twice");
        if desc {
            assert_eq!(seen.len(), 30, "paging backward never reaches the newer rows");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn binary_and_chat_rows_come_back_as_sent_in_the_exact_row_layout() {
    let server = TestServer::start().await;
    let mut alice = in_room(&server, 1, 7001).await;
    let bin = alice.call(&send(7001, 11, 52, MessageBody::Binary(vec![0, 1, 2, 0xff]))).await.unwrap();
    alice.call(&send(7001, 12, 30, MessageBody::Text("hi".into()))).await.unwrap();
    let raw = alice.call_raw("getroommsg", &page(7001, true, 10, 0, None)).await.unwrap();
    // {num: 2, lastid, begin: 0, end: 0, msgs: [[id, 1, 30, 12, false, "hi", "", mtime], [id, 1, 52, 11, false, bin, "", mtime]]}
    let Value::Map(map) = Value::from_msgpack(&raw).unwrap() else { panic!("a map") };
    let keys: Vec<&str> = map.iter().map(|(k, _)| k.as_str().unwrap()).collect();
    assert_eq!(keys, ["num", "lastid", "begin", "end", "msgs"]);
    let Value::Array(msgs) = &map[4].1 else { panic!("msgs is an array") };
    let row = |i: usize| match &msgs[i] {
        Value::Array(row) => row.clone(),
        other => panic!("a row is an array, not {other:?}"),
    };
    let chat = row(0);
    assert_eq!(chat.len(), 8);
    assert_eq!((&chat[1], &chat[2], &chat[4]), (&Value::Int(1), &Value::Int(30), &Value::Bool(false)));
    assert_eq!(chat[5].as_str(), Some("hi"), "chat is plain text in history, never the push map");
    assert_eq!(chat[6].as_str(), Some(""));
    let binary = row(1);
    assert_eq!(binary[5], Value::Bin(vec![0, 1, 2, 0xff].into()), "bin stays bin");
    assert_eq!(binary[7], Value::Int(bin.mtime));
    assert_eq!(map[1].1, binary[0], "lastid is the last row's id");
    server.stop().await;
}

#[tokio::test]
async fn deleted_messages_vanish_from_pages_and_getmsg() {
    let server = TestServer::start().await;
    let mut alice = in_room(&server, 1, 7).await;
    let mut bob = in_room(&server, 2, 7).await;
    for mid in 1..=5 {
        alice.call(&send(7, mid, 51, MessageBody::Text(format!("m{mid}")))).await.unwrap();
    }
    let get = |mid| GetMsg { mid, from: 1, xid: 7, kind: 3 };
    let info = bob.call(&get(3)).await.unwrap();
    assert_eq!((info.mtype, info.msg, info.attrs), (51, MessageBody::Text("m3".into()), String::new()));

    let del = |mid, from| DelMsg { mid, from, xid: 7, kind: 3 };
    let err = bob.call(&del(3, 1)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::PermissionDenied.code(), "only one's own messages: {}", err.ex);
    alice.call(&del(3, 1)).await.unwrap();
    alice.call(&del(3, 1)).await.expect("deleting again is not an error");
    assert_eq!(mids(&all_rows(&mut bob, 7, false, 20, None).await), vec![1, 2, 4, 5]);
    assert_eq!(bob.call(&get(3)).await.unwrap_err().code, ErrorCode::MessageNotFound.code());

    // The server API deletes anyone's, and reads any room.
    let mut backend = server.client().await;
    backend.call(&DelMsg { mid: 4, from: 1, xid: 7, kind: 3 }).await.unwrap();
    let answer = backend
        .call(&GetRoomMsg { uid: 99, rid: 7, desc: false, num: 10, begin: 0, end: 0, lastid: 0, mtypes: None })
        .await
        .unwrap();
    assert_eq!(mids(&answer.msgs), vec![1, 2, 5]);
    let not_room = backend.call(&GetMsg { mid: 1, from: 1, xid: 7, kind: 1 }).await.unwrap_err();
    assert_eq!(not_room.code, ErrorCode::InvalidParameter.code());
    assert!(not_room.ex.contains("not supported"), "{}", not_room.ex);
    assert_eq!(backend.call(&GetMsg { mid: 1, from: 1, xid: 7, kind: 3 }).await.unwrap().id, answer.msgs[0].id);
    server.stop().await;
}

#[tokio::test]
async fn members_read_even_when_muted_and_others_may_not() {
    let server = TestServer::start().await;
    let mut alice = in_room(&server, 1, 7).await;
    let mut bob = in_room(&server, 2, 7).await;
    alice.call(&send(7, 1, 51, MessageBody::Text("before".into()))).await.unwrap();
    let mut backend = server.client().await;
    backend.call(&AddRoomBan { rid: Some(7), uid: 2, btime: 60 }).await.unwrap();
    let muted_send = bob.call(&send(7, 2, 51, MessageBody::Text("x".into()))).await.unwrap_err();
    assert_eq!(muted_send.code, ErrorCode::BannedInRoom.code());
    assert_eq!(mids(&all_rows(&mut bob, 7, true, 20, None).await), vec![1], "a mute does not stop reading");

    let mut carol = Player::login(&server, 3).await;
    for err in [
        carol.call(&page(7, true, 10, 0, None)).await.unwrap_err(),
        carol.call(&GetMsg { mid: 1, from: 1, xid: 7, kind: 3 }).await.unwrap_err(),
        carol.call(&c::GetRoomMsgCount { rid: 7, begin: 0, end: 0, mtypes: None }).await.unwrap_err(),
    ] {
        assert_eq!(err.code, ErrorCode::NotInRoom.code(), "{}", err.ex);
    }
    server.stop().await;
}

#[tokio::test]
async fn counts_and_each_rooms_newest_message() {
    let server = TestServer::start().await;
    let mut alice = in_room(&server, 1, 7).await;
    alice.call(&c::EnterRoom { rid: 8 }).await.unwrap();
    alice.call(&c::EnterRoom { rid: 9 }).await.unwrap();
    for mid in 1..=6 {
        let mtype = if mid % 2 == 0 { 52 } else { 51 };
        alice.call(&send(7, mid, mtype, MessageBody::Text(format!("m{mid}")))).await.unwrap();
    }
    alice.call(&send(8, 100, 51, MessageBody::Text("eight".into()))).await.unwrap();
    let count = |mtypes| c::GetRoomMsgCount { rid: 7, begin: 0, end: 0, mtypes };
    assert_eq!(alice.call(&count(None)).await.unwrap().count, 6);
    assert_eq!(alice.call(&count(Some(vec![52]))).await.unwrap().count, 3);
    let mut backend = server.client().await;
    let server_count = GetRoomMsgCount { uid: None, rid: 7, begin: 0, end: 0, mtypes: Some(vec![51]) };
    assert_eq!(backend.call(&server_count).await.unwrap().count, 3);

    let newest = alice.call(&c::GetUserRoomsAndLastMsg { mtypes: None }).await.unwrap();
    let rooms: Vec<(&str, i64)> = newest.rooms.iter().map(|(rid, row)| (rid.as_str(), row.mid)).collect();
    assert_eq!(rooms, vec![("7", 6), ("8", 100)], "room 9 has no message and is left out");
    let newest_51 = alice.call(&c::GetUserRoomsAndLastMsg { mtypes: Some(vec![51]) }).await.unwrap();
    assert_eq!(newest_51.rooms["7"].mid, 5);
    server.stop().await;
}

#[tokio::test]
async fn a_retried_send_is_answered_from_history_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("rtm-history-retry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let restartable = Restartable::new(&dir);
    let server = TestServer::start_with(restartable.adjust()).await;
    let mut backend = server.client().await;
    let message = |msg: &str| SendRoomMsg {
        mtype: 51,
        from: 5,
        rid: 7,
        mid: 42,
        msg: MessageBody::Text(msg.into()),
        attrs: String::new(),
    };
    let first = backend.call(&message("once")).await.unwrap();
    server.stop().await;

    let server = TestServer::start_with(restartable.adjust()).await;
    let mut backend = server.client().await;
    assert_eq!(backend.call(&message("once")).await.unwrap(), first, "the first mtime, not a second message");
    let other = backend.call(&message("other")).await.unwrap_err();
    assert_eq!(other.code, ErrorCode::DuplicatedMid.code());
    let rows = backend
        .call(&GetRoomMsg { uid: 5, rid: 7, desc: false, num: 20, begin: 0, end: 0, lastid: 0, mtypes: None })
        .await
        .unwrap();
    assert_eq!(mids(&rows.msgs), vec![42], "stored once, and kept across the restart");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn history_off_answers_200060_and_messages_still_flow() {
    let server = TestServer::start_with(|c| c.history.enabled = false).await;
    let mut alice = in_room(&server, 1, 7).await;
    let mut bob = in_room(&server, 2, 7).await;
    alice.call(&send(7, 1, 51, MessageBody::Text("hi".into()))).await.unwrap();
    bob.push("pushroommsg").await;
    let err = bob.call(&page(7, true, 10, 0, None)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NoConfigInConsole.code(), "{}", err.ex);
    server.stop().await;
}

#[tokio::test]
async fn a_released_room_keeps_or_drops_its_history_as_configured() {
    for keep in [true, false] {
        let server = TestServer::start_with(|c| c.history.keep_released = keep).await;
        let mut backend = server.client().await;
        let send = |mid| SendRoomMsg {
            mtype: 51,
            from: 5,
            rid: 7,
            mid,
            msg: MessageBody::Text("x".into()),
            attrs: String::new(),
        };
        backend.call(&send(1)).await.unwrap();
        backend.call(&send(2)).await.unwrap();
        backend.call(&DeleteRoom { rid: 7 }).await.unwrap();
        backend.call(&send(3)).await.unwrap();
        let page = GetRoomMsg { uid: 5, rid: 7, desc: false, num: 20, begin: 0, end: 0, lastid: 0, mtypes: None };
        let rows = backend.call(&page).await.unwrap();
        let expected = if keep { vec![1, 2, 3] } else { vec![3] };
        assert_eq!(mids(&rows.msgs), expected, "keep_released = {keep}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_project_keeps_its_own_number_of_messages() {
    let server = TestServer::start_with(|c| {
        c.history.max_per_room = 3;
        c.projects[1].history =
            Some(rtm_server::config::RetentionOverride { max_per_room: Some(5), ..Default::default() });
    })
    .await;
    for (mut backend, kept) in [(server.client().await, 3), (server.client_for(OTHER_PID, OTHER_SECRET).await, 5)] {
        for mid in 1..=8 {
            let send = SendRoomMsg {
                mtype: 51,
                from: 5,
                rid: 7,
                mid,
                msg: MessageBody::Text("x".into()),
                attrs: String::new(),
            };
            backend.call(&send).await.unwrap();
        }
        let page = GetRoomMsg { uid: 5, rid: 7, desc: false, num: 20, begin: 0, end: 0, lastid: 0, mtypes: None };
        let rows = backend.call(&page).await.unwrap();
        assert_eq!(mids(&rows.msgs), ((9 - kept)..=8).collect::<Vec<_>>());
        let count = GetRoomMsgCount { uid: None, rid: 7, begin: 0, end: 0, mtypes: None };
        assert_eq!(backend.call(&count).await.unwrap().count, kept);
    }
    server.stop().await;
}
