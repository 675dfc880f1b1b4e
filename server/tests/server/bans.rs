//! Bans that expire, in one room or in every room, and the project block list.

use std::time::Duration;

use rtm_protocol::methods::*;

use crate::support::*;

#[tokio::test]
async fn a_room_ban_expires_on_time() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.call(&AddRoomBan { rid: Some(5), uid: 1, btime: 1 }).await.unwrap();
    assert!(c.call(&IsBanOfRoom { rid: 5, uid: 1 }).await.unwrap().ok);
    assert!(!c.call(&IsBanOfRoom { rid: 6, uid: 1 }).await.unwrap().ok, "only that room");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!c.call(&IsBanOfRoom { rid: 5, uid: 1 }).await.unwrap().ok, "expired after 1 s");
    server.stop().await;
}

#[tokio::test]
async fn all_rooms_bans_by_absent_or_non_positive_rid() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.call(&AddRoomBan { rid: None, uid: 1, btime: 0 }).await.unwrap();
    // Go and Java send rid <= 0 for "every room".
    let auth = c.auth("addroomban");
    let answer = c
        .call_raw("addroomban", &Signed { auth: &auth, params: &AddRoomBan { rid: Some(0), uid: 2, btime: 60 } })
        .await;
    decode_answer::<Empty>(&answer).unwrap();
    for rid in [1, 2, 1_000_000] {
        assert!(c.call(&IsBanOfRoom { rid, uid: 1 }).await.unwrap().ok);
        assert!(c.call(&IsBanOfRoom { rid, uid: 2 }).await.unwrap().ok);
    }
    c.call(&RemoveRoomBan { rid: None, uid: 1 }).await.unwrap();
    assert!(!c.call(&IsBanOfRoom { rid: 1, uid: 1 }).await.unwrap().ok);
    server.stop().await;
}

#[tokio::test]
async fn permanent_bans_and_removal() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.call(&AddRoomBan { rid: Some(3), uid: 7, btime: -5 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(c.call(&IsBanOfRoom { rid: 3, uid: 7 }).await.unwrap().ok);
    c.call(&RemoveRoomBan { rid: Some(3), uid: 7 }).await.unwrap();
    assert!(!c.call(&IsBanOfRoom { rid: 3, uid: 7 }).await.unwrap().ok);
    server.stop().await;
}

#[tokio::test]
async fn a_ban_is_a_mute_not_a_kick() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.call(&AddRoomMembers { rid: 8, uids: vec![1, 2] }).await.unwrap();
    c.call(&AddRoomBan { rid: Some(8), uid: 1, btime: 60 }).await.unwrap();
    assert_eq!(c.call(&GetRoomMembers { rid: 8 }).await.unwrap().uids, vec![1, 2]);
    // And it outlives the member leaving and coming back.
    c.call(&DelRoomMembers { rid: 8, uids: vec![1, 2] }).await.unwrap();
    c.call(&AddRoomMember { rid: 8, uid: 1 }).await.unwrap();
    assert!(c.call(&IsBanOfRoom { rid: 8, uid: 1 }).await.unwrap().ok);
    server.stop().await;
}

#[tokio::test]
async fn project_block_list_expires() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.call(&AddProjectBlack { uid: 4, btime: 1 }).await.unwrap();
    c.call(&AddProjectBlack { uid: 5, btime: 0 }).await.unwrap();
    assert!(c.call(&IsProjectBlack { uid: 4 }).await.unwrap().ok);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!c.call(&IsProjectBlack { uid: 4 }).await.unwrap().ok);
    assert!(c.call(&IsProjectBlack { uid: 5 }).await.unwrap().ok);
    c.call(&RemoveProjectBlack { uid: 5 }).await.unwrap();
    assert!(!c.call(&IsProjectBlack { uid: 5 }).await.unwrap().ok);
    server.stop().await;
}
