//! Every room method, and isolation between projects.

use std::collections::HashMap;

use rtm_protocol::methods::*;

use crate::support::*;

#[tokio::test]
async fn add_get_and_delete_members() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.call(&AddRoomMember { rid: 7001, uid: 2 }).await.unwrap();
    c.call(&AddRoomMember { rid: 7001, uid: 1 }).await.unwrap();
    c.call(&AddRoomMember { rid: 7001, uid: 1 }).await.unwrap();
    assert_eq!(c.call(&GetRoomMembers { rid: 7001 }).await.unwrap().uids, vec![1, 2]);
    c.call(&DelRoomMember { rid: 7001, uid: 1 }).await.unwrap();
    c.call(&DelRoomMember { rid: 7001, uid: 42 }).await.unwrap();
    assert_eq!(c.call(&GetRoomMembers { rid: 7001 }).await.unwrap().uids, vec![2]);
    assert_eq!(c.call(&GetRoomMembers { rid: 9999 }).await.unwrap().uids, Vec::<i64>::new());
    server.stop().await;
}

#[tokio::test]
async fn batch_member_calls() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let added = c.call(&AddRoomMembers { rid: 1, uids: vec![5, 6, 5, 7] }).await.unwrap();
    assert_eq!(added.successed_uids, vec![5, 6, 7]);
    let removed = c.call(&DelRoomMembers { rid: 1, uids: vec![6, 8] }).await.unwrap();
    assert_eq!(removed.successed_uids, vec![6, 8]);
    assert_eq!(c.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, vec![5, 7]);

    c.call(&AddUserRooms { rids: vec![10, 11, 12], uid: 99 }).await.unwrap();
    c.call(&DeleteUserRooms { rids: vec![11], uid: 99 }).await.unwrap();
    let counts = c.call(&GetRoomCount::new(vec![10, 11, 12, 1])).await.unwrap().to_map();
    assert_eq!(counts, HashMap::from([(10, 1), (11, 0), (12, 1), (1, 2)]));
    server.stop().await;
}

#[tokio::test]
async fn room_info_is_public_and_private() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let info = c.call(&GetRoomInfo { rid: 3 }).await.unwrap();
    assert_eq!(info, RoomInfo { oinfo: String::new(), pinfo: String::new() });
    c.call(&SetRoomInfo { rid: 3, oinfo: Some("public".into()), pinfo: None }).await.unwrap();
    c.call(&SetRoomInfo { rid: 3, oinfo: None, pinfo: Some("private".into()) }).await.unwrap();
    let info = c.call(&GetRoomInfo { rid: 3 }).await.unwrap();
    assert_eq!(info, RoomInfo { oinfo: "public".into(), pinfo: "private".into() });
    c.call(&SetRoomInfo { rid: 3, oinfo: Some("changed".into()), pinfo: None }).await.unwrap();
    assert_eq!(c.call(&GetRoomInfo { rid: 3 }).await.unwrap().pinfo, "private");
    server.stop().await;
}

#[tokio::test]
async fn getroomcount_accepts_the_single_rid_form() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.call(&AddRoomMembers { rid: 4, uids: vec![1, 2, 3] }).await.unwrap();
    let counts = c.call(&GetRoomCount { rids: None, rid: Some(4) }).await.unwrap();
    assert_eq!(counts.cn, vec![(4, 3)]);
    server.stop().await;
}

#[tokio::test]
async fn projects_are_isolated() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client_for(OTHER_PID, OTHER_SECRET).await;
    a.call(&AddRoomMember { rid: 1, uid: 1 }).await.unwrap();
    a.call(&SetRoomInfo { rid: 1, oinfo: Some("a".into()), pinfo: Some("a".into()) }).await.unwrap();
    a.call(&AddRoomBan { rid: Some(1), uid: 1, btime: 0 }).await.unwrap();
    a.call(&AddProjectBlack { uid: 1, btime: 0 }).await.unwrap();

    assert_eq!(b.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, Vec::<i64>::new());
    assert_eq!(b.call(&GetRoomInfo { rid: 1 }).await.unwrap(), RoomInfo::default());
    assert!(!b.call(&IsBanOfRoom { rid: 1, uid: 1 }).await.unwrap().ok);
    assert!(!b.call(&IsProjectBlack { uid: 1 }).await.unwrap().ok);
    assert_eq!(b.call(&GetRoomCount::new(vec![1])).await.unwrap().cn, vec![(1, 0)]);
    // And a project's own view is intact.
    assert_eq!(a.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, vec![1]);
    server.stop().await;
}

#[tokio::test]
async fn ping_answers_the_time_in_milliseconds() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let before = now_secs() * 1000;
    let answer = c.call_raw("*ping", &Empty {}).await;
    let ts = decode_answer::<PingAnswer>(&answer).unwrap().ts;
    assert!(ts >= before && ts < before + 5_000, "{ts} vs {before}");
    server.stop().await;
}
