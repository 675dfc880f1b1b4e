//! Scheduled rooms and the policies the server enforces by itself, with
//! second-scale values.

use std::time::Duration;

use rtm_protocol::methods::*;

use crate::support::*;

async fn exists(c: &mut Client, rid: i64) -> bool {
    c.call(&RoomExists { rid }).await.unwrap().ok
}

/// Sleeps until `unix_secs` (plus a margin for the deadline task).
async fn sleep_past(unix_secs: i64) {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    tokio::time::sleep(Duration::from_millis((unix_secs * 1000 - now_ms).max(0) as u64 + 300)).await;
}

fn room(rid: i64) -> CreateRoom {
    CreateRoom { rid: Some(rid), ..CreateRoom::default() }
}

#[tokio::test]
async fn a_room_is_released_when_its_window_ends() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let created = c.call(&CreateRoom { valid_until: Some(now_secs() + 2), ..room(1) }).await.unwrap();
    c.call(&AddRoomMembers { rid: 1, uids: vec![1, 2] }).await.unwrap();
    assert!(exists(&mut c, 1).await);
    sleep_past(created.valid_until).await;
    assert!(!exists(&mut c, 1).await);
    assert_eq!(c.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, Vec::<i64>::new());
    server.stop().await;
}

#[tokio::test]
async fn joins_outside_the_window_are_refused() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.call(&CreateRoom { valid_from: Some(now_secs() + 100), ..room(2) }).await.unwrap();
    let err = c.call(&AddRoomMember { rid: 2, uid: 1 }).await.unwrap_err();
    assert_eq!(err.code, 200021);
    assert!(err.ex.contains("room 2"), "{}", err.ex);
    assert_eq!(c.call(&GetRoom { rid: 2 }).await.unwrap().state, "scheduled");
    server.stop().await;
}

#[tokio::test]
async fn max_duration_counts_from_the_second_member() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.call(&CreateRoom { max_seconds: Some(1), ..room(3) }).await.unwrap();
    c.call(&AddRoomMember { rid: 3, uid: 1 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(exists(&mut c, 3).await, "one member: the room has not begun");
    c.call(&AddRoomMember { rid: 3, uid: 2 }).await.unwrap();
    assert_eq!(c.call(&GetRoom { rid: 3 }).await.unwrap().state, "active");
    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert!(!exists(&mut c, 3).await, "released one second after it began");
    server.stop().await;
}

#[tokio::test]
async fn falling_below_the_threshold_after_the_start_releases() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.call(&CreateRoom { release_threshold: Some(2), ..room(4) }).await.unwrap();
    c.call(&AddRoomMember { rid: 4, uid: 1 }).await.unwrap();
    c.call(&DelRoomMember { rid: 4, uid: 1 }).await.unwrap();
    assert!(exists(&mut c, 4).await, "not begun yet: leaving does not release");
    c.call(&AddRoomMembers { rid: 4, uids: vec![1, 2, 3] }).await.unwrap();
    c.call(&DelRoomMember { rid: 4, uid: 1 }).await.unwrap();
    assert!(exists(&mut c, 4).await, "two left: not below 2");
    c.call(&DelRoomMember { rid: 4, uid: 2 }).await.unwrap();
    assert!(!exists(&mut c, 4).await, "one left: released");
    server.stop().await;
}

#[tokio::test]
async fn idle_rooms_are_released_unless_kept_alive() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.call(&CreateRoom { idle_seconds: Some(1), ..room(5) }).await.unwrap();
    c.call(&CreateRoom { idle_seconds: Some(1), ..room(6) }).await.unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.call(&KeepRoomAlive { rid: 5 }).await.unwrap();
    }
    assert!(exists(&mut c, 5).await, "kept alive for 2 s with a 1 s idle limit");
    assert!(!exists(&mut c, 6).await, "left idle: released");
    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert!(!exists(&mut c, 5).await, "released once the keep-alives stopped");
    assert_eq!(c.call(&KeepRoomAlive { rid: 6 }).await.unwrap_err().code, 200034);
    server.stop().await;
}

#[tokio::test]
async fn manual_and_automatic_extension() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let ends = now_secs() + 2;
    c.call(&CreateRoom { valid_until: Some(ends), ..room(7) }).await.unwrap();
    c.call(&CreateRoom { valid_until: Some(ends), ..room(8) }).await.unwrap();
    c.call(&CreateRoom { valid_until: Some(ends), ..room(9) }).await.unwrap();
    let extended = c.call(&ExtendRoom { rid: 7, auto: None, minutes: Some(1) }).await.unwrap();
    assert_eq!(extended.valid_until, ends + 60);
    let auto = c.call(&ExtendRoom { rid: 8, auto: Some(true), minutes: None }).await.unwrap();
    assert_eq!((auto.valid_until, auto.auto_extend), (ends, true));
    c.call(&AddRoomMember { rid: 8, uid: 1 }).await.unwrap();
    c.call(&ExtendRoom { rid: 9, auto: Some(true), minutes: None }).await.unwrap();
    sleep_past(ends).await;
    assert!(exists(&mut c, 7).await, "extended by a minute");
    let room8 = c.call(&GetRoom { rid: 8 }).await.unwrap();
    assert!(room8.valid_until >= ends + 15 * 60, "auto-extended by 15 minutes: {}", room8.valid_until);
    assert!(!exists(&mut c, 9).await, "auto extension needs members");
    server.stop().await;
}

#[tokio::test]
async fn deadlines_survive_restarts_and_pass_while_down() {
    let dir = std::env::temp_dir().join(format!("rtm-lifetimes-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let restartable = Restartable::new(&dir);

    let server = TestServer::start_full(restartable.adjust(), false, false).await;
    let mut c = server.client().await;
    // Two seconds, not one: the server's "now" may already be in the next second.
    let ends = now_secs() + 2;
    c.call(&CreateRoom { valid_until: Some(ends), ..room(10) }).await.unwrap();
    c.call(&CreateRoom { max_seconds: Some(3600), ..room(11) }).await.unwrap();
    c.call(&AddRoomMembers { rid: 11, uids: vec![1, 2] }).await.unwrap();
    c.call(&UpsertRoomMembers { rid: 11, members: vec![MemberSpec::new(2, Role::Consumer)] }).await.unwrap();
    c.call(&SetMemberMode { rid: 11, uid: 1, mode: Mode::SendOnly }).await.unwrap();
    let members_before = c.call(&ListRoomMembers { rid: 11, cursor: None, limit: None }).await.unwrap();
    drop(c);
    server.stop().await;

    sleep_past(ends).await;
    let server = TestServer::start_full(restartable.adjust(), false, false).await;
    let mut c = server.client().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!exists(&mut c, 10).await, "its window ended while the server was down");
    let kept = c.call(&GetRoom { rid: 11 }).await.unwrap();
    assert_eq!((kept.state.as_str(), kept.member_count, kept.max_seconds), ("active", 2, 3600));
    assert!(kept.begin_time > 0);
    let members_after = c.call(&ListRoomMembers { rid: 11, cursor: None, limit: None }).await.unwrap();
    assert_eq!(members_after, members_before, "roles, modes and join times are durable");
    assert_eq!(members_after.members[1].mode, Mode::ReceiveOnly);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Concurrent extensions each count: the end is read and moved under the
/// room's lock, so none overwrites another.
#[tokio::test]
async fn concurrent_extensions_each_extend_the_room() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let created = c.call(&room(1)).await.unwrap();
    let mut calls = Vec::new();
    for _ in 0..50 {
        let mut client = server.client().await;
        calls.push(tokio::spawn(async move {
            client.call(&ExtendRoom { rid: 1, auto: None, minutes: Some(1) }).await.unwrap().valid_until
        }));
    }
    let mut ends = Vec::new();
    for call in calls {
        ends.push(call.await.unwrap());
    }
    ends.sort_unstable();
    let expected: Vec<i64> = (1..=50).map(|k| created.valid_until + 60 * k).collect();
    assert_eq!(ends, expected, "every call saw a distinct end, one minute after the one before");
    assert_eq!(c.call(&GetRoom { rid: 1 }).await.unwrap().valid_until, created.valid_until + 50 * 60);
    server.stop().await;
}
