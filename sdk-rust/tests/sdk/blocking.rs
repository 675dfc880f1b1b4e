//! Every method, blocking form, from plain threads.

use std::collections::HashMap;
use std::time::Duration;

use rtm_sdk::{blocking::RtmServerClient, codes, ErrorKind, RoomInfo};

use crate::support::*;

#[test]
fn every_method_blocking() {
    let server = ServerThread::start();
    let client = RtmServerClient::connect(server.options()).unwrap();

    client.add_room_member(1, 2).unwrap();
    client.add_room_member(1, 1).unwrap();
    client.del_room_member(1, 2).unwrap();
    assert_eq!(client.get_room_members(1).unwrap(), vec![1]);
    assert_eq!(client.add_room_members(2, &[3, 4]).unwrap(), vec![3, 4]);
    assert_eq!(client.del_room_members(2, &[4]).unwrap(), vec![4]);
    client.add_user_rooms(5, &[3, 4]).unwrap();
    client.delete_user_rooms(5, &[4]).unwrap();
    assert_eq!(client.get_room_count(&[1, 2, 3, 4]).unwrap(), HashMap::from([(1, 1), (2, 1), (3, 1), (4, 0)]));
    client.set_room_info(1, Some("o"), Some("p")).unwrap();
    assert_eq!(client.get_room_info(1).unwrap(), RoomInfo { oinfo: "o".into(), pinfo: "p".into() });
    client.add_room_ban(Some(1), 1, Some(Duration::from_secs(10))).unwrap();
    assert!(client.is_ban_of_room(1, 1).unwrap());
    client.remove_room_ban(Some(1), 1).unwrap();
    assert!(!client.is_ban_of_room(1, 1).unwrap());
    client.add_project_black(9, None).unwrap();
    assert!(client.is_project_black(9).unwrap());
    client.remove_project_black(9).unwrap();
    assert!(!client.is_project_black(9).unwrap());
    assert!(client.ping().unwrap() > 0);
    let created = client.create_room(&rtm_sdk::CreateRoom::default()).unwrap();
    assert!(client.room_exists(created.rid).unwrap());
    assert_eq!(client.get_room(created.rid).unwrap().valid_until, created.valid_until);
    client.keep_room_alive(created.rid).unwrap();
    assert_eq!(client.extend_room(created.rid, None, None).unwrap().valid_until, created.valid_until + 900);
    client.delete_room(created.rid).unwrap();
    assert!(!client.room_exists(created.rid).unwrap());
    let counts: rtm_sdk::protocol::methods::RoomCounts =
        client.call("getroomcount", &rtm_sdk::protocol::methods::GetRoomCount::new(vec![1])).unwrap();
    assert_eq!(counts.cn, vec![(1, 1)]);
    assert!(client.add_room_members(1, &[]).unwrap_err().is_server_code(codes::EMPTY_PARAMETER));

    // Clones share the connection; the per-handle timeout applies.
    let quick = client.with_timeout(Duration::from_secs(1));
    quick.add_room_member(1, 3).unwrap();
    assert_eq!(client.get_room_members(1).unwrap(), vec![1, 3]);
    client.close().unwrap();
    assert_eq!(client.add_room_member(1, 4).unwrap_err().kind(), ErrorKind::Connection);
}

#[test]
fn blocking_inside_an_async_runtime_is_a_clear_error() {
    let server = ServerThread::start();
    let client = RtmServerClient::connect(server.options()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let err = client.add_room_member(1, 1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains("async runtime"), "{err}");
        let err = RtmServerClient::connect(server.options()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        // The async client underneath is the way to go there.
        client.async_client().add_room_member(1, 1).await.unwrap();
    });
    assert_eq!(client.get_room_members(1).unwrap(), vec![1]);
}

#[test]
fn many_threads_share_one_blocking_client() {
    let server = ServerThread::start();
    let client = RtmServerClient::connect(server.options()).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                for uid in 0..50 {
                    client.add_room_member(100, t * 1000 + uid).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(client.get_room_count(&[100]).unwrap()[&100], 400);
}

#[test]
fn history_blocking_and_by_callback() {
    let server = ServerThread::start();
    let client = RtmServerClient::connect(server.options()).unwrap();
    for mid in 1..=7 {
        client.send_room_message(5, 3, 51, rtm_sdk::MessageBody::Text(format!("m{mid}")), "").unwrap();
    }
    let rows: Vec<_> =
        client.room_history(5, 3, rtm_sdk::HistoryQuery::oldest_first(3)).collect::<Result<_, _>>().unwrap();
    assert_eq!(
        rows.iter().map(|r| r.msg.clone()).collect::<Vec<_>>(),
        (1..=7).map(|i| rtm_sdk::MessageBody::Text(format!("m{i}"))).collect::<Vec<_>>()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    client.get_room_message_count_with_callback(3, 0, 0, None, move |count| tx.send(count).unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap(), 7);
    let page = client.get_room_messages(5, 3, &rtm_sdk::HistoryQuery::newest_first(2)).unwrap();
    assert_eq!((page.num, page.msgs[0].id), (2, rows[6].id));
    let missing = client.get_room_message(3, 5, 424242).unwrap_err();
    assert!(missing.is_server_code(codes::MESSAGE_NOT_FOUND), "{missing}");
}

#[test]
fn a_player_from_plain_threads_blocking_and_by_callback() {
    let server = ServerThread::start();
    let backend = RtmServerClient::connect(server.options()).unwrap();
    let login = |uid| {
        let token = backend.get_token(uid).unwrap();
        rtm_sdk::blocking::RtmClient::login(rtm_sdk::RtmClientOptions::new(
            server.client_addr.to_string(),
            PID,
            uid,
            token,
        ))
        .unwrap()
    };
    let (alice, bob) = (login(1), login(2));
    alice.enter_room(7).unwrap();
    bob.enter_room(7).unwrap();
    assert_eq!(alice.room_members(7).unwrap(), vec![1, 2]);
    let mut heard = bob.messages();
    let mtime = alice.send_room_chat(7, "hi bob").unwrap();
    let message = heard.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!((message.kind, message.mtime), (rtm_sdk::MessageKind::Chat("hi bob".into()), mtime));
    let (tx, rx) = std::sync::mpsc::channel();
    alice.send_room_message_with_callback(7, 51, rtm_sdk::MessageBody::Text("later".into()), "", move |sent| {
        tx.send(sent).unwrap();
    });
    assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap() >= mtime);
    assert_eq!(heard.next().unwrap().unwrap().kind, rtm_sdk::MessageKind::Text("later".into()));
    let rows: Vec<_> = bob.room_history(7, rtm_sdk::HistoryQuery::oldest_first(1)).collect::<Result<_, _>>().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(bob.get_room_message_count(7, 0, 0, Some(&[30])).unwrap(), 1);
    let not_member = login(3).get_room_messages(7, &rtm_sdk::HistoryQuery::newest_first(5)).unwrap_err();
    assert!(not_member.is_server_code(codes::NOT_IN_ROOM), "{not_member}");
    alice.bye().unwrap();
}

#[tokio::test]
async fn a_blocking_player_inside_a_runtime_is_refused() {
    let options = rtm_sdk::RtmClientOptions::new("127.0.0.1:1", PID, 1, "t");
    let err = rtm_sdk::blocking::RtmClient::login(options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}
