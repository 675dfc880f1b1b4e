//! Every method, async form, against the real server.

use std::collections::HashMap;
use std::time::Duration;

use rtm_sdk::{codes, ErrorKind, RoomInfo, RtmServerClient};
use serde::Serialize;

use crate::support::*;

#[tokio::test]
async fn every_method_async() {
    let server = ServerThread::start();
    let client = RtmServerClient::connect(server.options()).await.unwrap();

    client.add_room_member(7001, 2).await.unwrap();
    client.add_room_member(7001, 1).await.unwrap();
    assert_eq!(client.get_room_members(7001).await.unwrap(), vec![1, 2]);
    client.del_room_member(7001, 2).await.unwrap();
    assert_eq!(client.get_room_members(7001).await.unwrap(), vec![1]);

    assert_eq!(client.add_room_members(7002, &[5, 6, 5]).await.unwrap(), vec![5, 6]);
    assert_eq!(client.del_room_members(7002, &[6]).await.unwrap(), vec![6]);
    client.add_user_rooms(9, &[7003, 7004]).await.unwrap();
    client.delete_user_rooms(9, &[7004]).await.unwrap();
    let counts = client.get_room_count(&[7001, 7002, 7003, 7004]).await.unwrap();
    assert_eq!(counts, HashMap::from([(7001, 1), (7002, 1), (7003, 1), (7004, 0)]));

    client.set_room_info(7001, Some("public"), None).await.unwrap();
    client.set_room_info(7001, None, Some("private")).await.unwrap();
    assert_eq!(client.get_room_info(7001).await.unwrap(), RoomInfo { oinfo: "public".into(), pinfo: "private".into() });

    client.add_room_ban(Some(7001), 1, Some(Duration::from_secs(60))).await.unwrap();
    assert!(client.is_ban_of_room(7001, 1).await.unwrap());
    client.remove_room_ban(Some(7001), 1).await.unwrap();
    assert!(!client.is_ban_of_room(7001, 1).await.unwrap());
    client.add_room_ban(None, 3, None).await.unwrap();
    assert!(client.is_ban_of_room(12345, 3).await.unwrap());
    client.remove_room_ban(None, 3).await.unwrap();
    assert!(!client.is_ban_of_room(12345, 3).await.unwrap());

    client.add_project_black(4, Some(Duration::from_secs(30))).await.unwrap();
    assert!(client.is_project_black(4).await.unwrap());
    client.remove_project_black(4).await.unwrap();
    assert!(!client.is_project_black(4).await.unwrap());

    let created = client
        .create_room(&rtm_sdk::CreateRoom { rid: Some(8001), max_seconds: Some(120), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(created.rid, 8001);
    assert!(client.room_exists(8001).await.unwrap());
    let details = client.get_room(8001).await.unwrap();
    assert!(details.scheduled);
    assert_eq!((details.max_seconds, details.state.as_str()), (120, "open"));
    client.keep_room_alive(8001).await.unwrap();
    let extended = client.extend_room(8001, Some(30), Some(true)).await.unwrap();
    assert_eq!((extended.valid_until, extended.auto_extend), (created.valid_until + 1800, true));
    client.delete_room(8001).await.unwrap();
    assert!(!client.room_exists(8001).await.unwrap());

    let ts = client.ping().await.unwrap();
    assert!(ts > 1_600_000_000_000, "{ts} is in milliseconds");
    client.close().await;
}

#[tokio::test]
async fn server_errors_keep_their_code_and_message() {
    let server = ServerThread::start();
    let client = RtmServerClient::connect(server.options()).await.unwrap();
    let err = client.add_room_members(1, &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    assert_eq!(err.code(), codes::EMPTY_PARAMETER);
    assert!(err.message().contains("uids"), "{err}");

    let err = client.set_room_info(1, None, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "refused before sending");

    let err = client.call::<serde::de::IgnoredAny>("nosuchmethod", &Empty {}).await.unwrap_err();
    assert!(err.is_server_code(codes::UNKNOWN_METHOD), "{err}");

    // A client with the wrong secret is refused by the server.
    let wrong =
        RtmServerClient::connect(rtm_sdk::ClientOptions::new(server.addr.to_string(), PID, "wrong")).await.unwrap();
    assert!(wrong.add_room_member(1, 1).await.unwrap_err().is_server_code(codes::INVALID_PID_OR_SIGN));
}

#[derive(Serialize)]
struct Empty {}

#[tokio::test]
async fn the_generic_call_signs_and_decodes() {
    #[derive(Serialize)]
    struct Params {
        rids: Vec<i64>,
    }
    let server = ServerThread::start();
    let client = RtmServerClient::connect(server.options()).await.unwrap();
    client.add_room_member(1, 1).await.unwrap();
    let answer: rtm_sdk::protocol::methods::RoomCounts =
        client.call("getroomcount", &Params { rids: vec![1] }).await.unwrap();
    assert_eq!(answer.cn, vec![(1, 1)]);
}

#[tokio::test]
async fn connecting_to_nothing_fails_fast() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let options = rtm_sdk::ClientOptions::new(addr.to_string(), PID, SECRET).connect_timeout(Duration::from_secs(2));
    let err = RtmServerClient::connect(options).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert_eq!(err.code(), codes::CONNECTION_CLOSED);
}

#[tokio::test]
async fn scheduled_rooms_participants_and_events_against_the_server() {
    use rtm_sdk::{CreateRoom, ListenFilter, MemberSpec, Mode, Role, RoomEvent, UpdateRoom};

    let server = ServerThread::start();
    let listener = RtmServerClient::connect(server.options()).await.unwrap();
    listener.set_listen(&ListenFilter::new().rooms([8101]), false, true).await.unwrap();
    let mut events = listener.room_events();
    let client = RtmServerClient::connect(server.options()).await.unwrap();

    let members = vec![MemberSpec::new(1, Role::Presenter), MemberSpec::new(2, Role::Consumer)];
    let room = CreateRoom { rid: Some(8101), members: Some(members), ..CreateRoom::default() };
    client.create_room(&room).await.unwrap();
    client.create_room(&CreateRoom { rid: Some(8102), ..CreateRoom::default() }).await.unwrap();
    let update = UpdateRoom { rid: 8101, idle_seconds: Some(600), ..UpdateRoom::default() };
    assert_eq!(client.update_room(&update).await.unwrap().idle_seconds, 600);

    let page = client.list_rooms(None, Some(1)).await.unwrap();
    assert_eq!((page.rooms[0].rid, page.more, page.next_cursor), (8101, true, 8101));
    let page = client.list_rooms(Some(page.next_cursor), Some(1)).await.unwrap();
    assert_eq!((page.rooms[0].rid, page.more), (8102, false));

    client.upsert_room_members(8101, &[MemberSpec::new(3, Role::Attendee)]).await.unwrap();
    client.set_member_mode(8101, 3, Mode::SendOnly).await.unwrap();
    let members = client.list_room_members(8101, None, None).await.unwrap().members;
    let roles: Vec<_> = members.iter().map(|m| (m.uid, m.role, m.mode)).collect();
    assert_eq!(
        roles,
        vec![
            (1, Role::Presenter, Mode::SendReceive),
            (2, Role::Consumer, Mode::ReceiveOnly),
            (3, Role::Attendee, Mode::SendOnly)
        ]
    );
    assert!(members.iter().all(|m| m.joined_at > 0));
    client.remove_room_members(8101, &[3]).await.unwrap();
    let err = client.set_member_mode(8101, 3, Mode::Neither).await.unwrap_err();
    assert!(err.is_server_code(codes::NOT_IN_ROOM), "{err}");
    client.delete_room(8101).await.unwrap();

    let mut names = Vec::new();
    while names.last().map(String::as_str) != Some(RoomEvent::ROOM_RELEASED) {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(event.rid, 8101, "only the listened room");
        names.push(event.name);
    }
    let expected = [
        "room_created",
        "member_joined",
        "member_joined",
        "room_updated",
        "member_joined",
        "member_updated",
        "member_left",
        "room_released",
    ];
    assert_eq!(names, expected);
}
