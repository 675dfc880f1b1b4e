//! Many concurrent calls through one client.

use std::collections::HashSet;

use rtm_sdk::RtmServerClient;
use tokio::task::JoinSet;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_calls_from_a_hundred_tasks() {
    let server = ServerThread::start();
    let client = RtmServerClient::connect(server.options()).await.unwrap();
    let mut tasks = JoinSet::new();
    for task in 0..100i64 {
        let client = client.clone();
        tasks.spawn(async move {
            // Each task keeps 100 calls in flight at once.
            let mut calls = JoinSet::new();
            for i in 0..100i64 {
                let client = client.clone();
                calls.spawn(async move {
                    let uid = task * 1_000 + i;
                    let added = client.add_room_members(task, &[uid]).await.unwrap();
                    (uid, added)
                });
            }
            let mut seen = HashSet::new();
            while let Some(result) = calls.join_next().await {
                let (uid, added) = result.unwrap();
                assert_eq!(added, vec![uid], "each call got its own answer");
                seen.insert(uid);
            }
            assert_eq!(seen.len(), 100);
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    let rooms: Vec<i64> = (0..100).collect();
    let counts = client.get_room_count(&rooms).await.unwrap();
    assert!(rooms.iter().all(|rid| counts[rid] == 100), "{counts:?}");
}
