//! `listrooms` and `listroommembers` page by key: a room (member) that
//! exists from the first page to the last is listed exactly once, in order,
//! however much else is created and deleted meanwhile.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rtm_protocol::methods::*;

use crate::support::*;

/// Runs `step(client, round)` on its own connection until the flag is set;
/// the task returns how many rounds it ran.
macro_rules! churn_in_background {
    ($server:expr, |$client:ident, $round:ident| $step:expr) => {{
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let addr = $server.addr;
        let task = tokio::spawn(async move {
            let mut $client = Client::connect(addr, PID, SECRET).await;
            let mut $round: i64 = 0;
            while !flag.load(Ordering::Relaxed) {
                $step;
                $round += 1;
            }
            $round
        });
        (stop, task)
    }};
}

#[tokio::test]
async fn listrooms_is_stable_while_rooms_come_and_go() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let stable: Vec<i64> = (1..=300).map(|i| i * 2).collect();
    for &rid in &stable {
        c.call(&CreateRoom { rid: Some(rid), ..CreateRoom::default() }).await.unwrap();
    }
    // Odd rooms appear and disappear all over the range while we page.
    let (stop, churn) = churn_in_background!(server, |client, round| {
        let rid = (round * 37 % 600) | 1;
        client.call(&CreateRoom { rid: Some(rid), ..CreateRoom::default() }).await.unwrap();
        client.call(&DeleteRoom { rid: ((rid + 74) % 600) | 1 }).await.unwrap();
    });
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = c.call(&ListRooms { cursor, limit: Some(7) }).await.unwrap();
        seen.extend(page.rooms.iter().map(|r| r.rid));
        if !page.more {
            break;
        }
        cursor = Some(page.next_cursor);
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = churn.await.unwrap();
    assert!(rounds > 10, "the churn ran during the walk ({rounds} rounds)");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ascending, no duplicates");
    let listed: HashSet<i64> = seen.iter().copied().collect();
    assert!(stable.iter().all(|rid| listed.contains(rid)), "every stable room is listed");
    assert!(seen.iter().all(|rid| rid % 2 == 1 || stable.contains(rid)));
    server.stop().await;
}

#[tokio::test]
async fn listroommembers_is_stable_while_members_come_and_go() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let stable: Vec<i64> = (1..=500).map(|i| i * 2).collect();
    for chunk in stable.chunks(100) {
        c.call(&AddRoomMembers { rid: 1, uids: chunk.to_vec() }).await.unwrap();
    }
    let (stop, churn) = churn_in_background!(server, |client, round| {
        let uid = (round * 53 % 1000) | 1;
        let members = vec![MemberSpec::new(uid, Role::Consumer)];
        client.call(&UpsertRoomMembers { rid: 1, members }).await.unwrap();
        client.call(&RemoveRoomMembers { rid: 1, uids: vec![((uid + 106) % 1000) | 1] }).await.unwrap();
    });
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = c.call(&ListRoomMembers { rid: 1, cursor, limit: Some(9) }).await.unwrap();
        seen.extend(page.members.iter().map(|m| m.uid));
        if !page.more {
            break;
        }
        cursor = Some(page.next_cursor);
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    assert!(churn.await.unwrap() > 10);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ascending, no duplicates");
    let listed: HashSet<i64> = seen.iter().copied().collect();
    assert!(stable.iter().all(|uid| listed.contains(uid)), "every stable member is listed");
    server.stop().await;
}
