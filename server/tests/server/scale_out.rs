//! Several nodes on one Redis Cluster (`engine.kind = "redis"`): what one
//! node changes, the others see; listeners anywhere hear every change once,
//! in order; a node that starts later, or whose subscriptions die, catches
//! up. Needs the local cluster (`scripts/redis-cluster.sh`, started on
//! demand).

use std::time::Duration;

use rtm_protocol::methods::*;
use tokio::time::Instant;

use crate::events::next_event;
use crate::support::*;

/// `n` nodes sharing one fresh namespace of the test cluster.
async fn nodes(n: usize) -> (Vec<TestServer>, String) {
    let namespace = fresh_namespace();
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(TestServer::start_with(|c| use_redis(c, &namespace)).await);
    }
    (nodes, namespace)
}

/// Polls `read` on `client` until it returns `want` (2 s at most).
async fn eventually<T, F>(client: &mut Client, want: T, mut read: F)
where
    T: PartialEq + std::fmt::Debug,
    F: AsyncFnMut(&mut Client) -> T,
{
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let got = read(client).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "still {got:?}, expected {want:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn what_one_node_changes_the_others_see() {
    let (nodes, _) = nodes(3).await;
    let mut a = nodes[0].client().await;
    let mut b = nodes[1].client().await;
    let mut c = nodes[2].client().await;
    a.call(&AddRoomMembers { rid: 1, uids: vec![3, 1, 2] }).await.unwrap();
    a.call(&SetRoomInfo { rid: 1, oinfo: Some("open".into()), pinfo: Some("private".into()) }).await.unwrap();
    a.call(&AddRoomBan { rid: Some(1), uid: 2, btime: 60 }).await.unwrap();
    a.call(&AddProjectBlack { uid: 9, btime: 0 }).await.unwrap();
    // The writer reads its own writes at once.
    assert_eq!(a.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, vec![1, 2, 3]);
    for other in [&mut b, &mut c] {
        eventually(other, vec![1, 2, 3], async |c| c.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids).await;
        eventually(other, (String::from("open"), String::from("private")), async |c| {
            let info = c.call(&GetRoomInfo { rid: 1 }).await.unwrap();
            (info.oinfo, info.pinfo)
        })
        .await;
        eventually(other, true, async |c| c.call(&IsBanOfRoom { rid: 1, uid: 2 }).await.unwrap().ok).await;
        eventually(other, true, async |c| c.call(&IsProjectBlack { uid: 9 }).await.unwrap().ok).await;
    }
    b.call(&DelRoomMember { rid: 1, uid: 1 }).await.unwrap();
    b.call(&RemoveRoomBan { rid: Some(1), uid: 2 }).await.unwrap();
    for other in [&mut a, &mut c] {
        eventually(other, vec![2, 3], async |c| c.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids).await;
        eventually(other, false, async |c| c.call(&IsBanOfRoom { rid: 1, uid: 2 }).await.unwrap().ok).await;
    }
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn a_listener_on_a_third_node_hears_every_change_once_in_room_order() {
    let (nodes, _) = nodes(3).await;
    let mut listener = nodes[2].client().await;
    listener.call(&SetListen { room: Some(true), ev: Some(true), ..SetListen::default() }).await.unwrap();
    const ROUNDS: i64 = 40;
    // Two writers on two nodes, each in its own room, at the same time.
    let writers = [(0usize, 7i64), (1, 8)].map(|(node, rid)| {
        let addr = nodes[node].addr;
        tokio::spawn(async move {
            let mut api = Client::connect(addr, PID, SECRET).await;
            for uid in 0..ROUNDS {
                api.call(&AddRoomMember { rid, uid }).await.unwrap();
                if uid % 2 == 1 {
                    api.call(&DelRoomMember { rid, uid: uid - 1 }).await.unwrap();
                }
            }
        })
    });
    for writer in writers {
        writer.await.unwrap();
    }
    let mut heard: std::collections::HashMap<i64, Vec<(String, i64)>> = Default::default();
    let total = 2 * (ROUNDS + ROUNDS / 2);
    for _ in 0..total {
        let (event, uid, data) = next_event(&mut listener).await;
        heard.entry(data["rid"].as_i64().unwrap()).or_default().push((event, uid));
    }
    let mut expected = Vec::new();
    for uid in 0..ROUNDS {
        expected.push(("member_joined".to_owned(), uid));
        if uid % 2 == 1 {
            expected.push(("member_left".to_owned(), uid - 1));
        }
    }
    assert_eq!(heard[&7], expected);
    assert_eq!(heard[&8], expected);
    // And nothing twice.
    let extra = tokio::time::timeout(Duration::from_millis(300), next_event(&mut listener)).await;
    assert!(extra.is_err(), "an event came twice: {extra:?}");
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn a_node_started_later_loads_the_state_and_a_deaf_node_catches_up() {
    let (nodes, namespace) = nodes(1).await;
    let mut a = nodes[0].client().await;
    a.call(&AddRoomMembers { rid: 4, uids: vec![1, 2] }).await.unwrap();
    a.call(&AddRoomBan { rid: None, uid: 5, btime: 0 }).await.unwrap();
    let late = TestServer::start_with(|c| use_redis(c, &namespace)).await;
    let mut b = late.client().await;
    // Loaded before it accepted the connection: no waiting.
    assert_eq!(b.call(&GetRoomMembers { rid: 4 }).await.unwrap().uids, vec![1, 2]);
    assert!(b.call(&IsBanOfRoom { rid: 99, uid: 5 }).await.unwrap().ok);

    // Every sharded subscription dies (as in a failover that the client
    // library does not notice); the sequence probe still brings the change.
    let mut killed = 0;
    for port in 17001..=17006 {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "CLIENT", "KILL", "TYPE", "pubsub"])
            .output()
            .expect("redis-cli runs");
        killed += String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().unwrap_or(0);
    }
    assert!(killed >= 2, "the two nodes' subscriber connections were killed ({killed})");
    a.call(&AddRoomMember { rid: 4, uid: 3 }).await.unwrap();
    eventually(&mut b, vec![1, 2, 3], async |c| c.call(&GetRoomMembers { rid: 4 }).await.unwrap().uids).await;
    late.stop().await;
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn room_messages_cross_nodes_in_one_order_once() {
    use crate::messaging::{gets_message, in_room, next_message, text};
    let (nodes, _) = nodes(3).await;
    let mut alice = in_room(&nodes[0], 1, 7).await;
    let mut bob = in_room(&nodes[1], 2, 7).await;
    let mut carol = in_room(&nodes[2], 3, 7).await;
    // Within the per-user rate limit of 20 messages a second.
    const EACH: i64 = 15;
    // Alice on node A and Bob on node B talk at the same time.
    let ((), bob_first) = tokio::join!(
        async {
            for mid in 1..=EACH {
                alice.call(&text(7, mid, &format!("a{mid}"))).await.unwrap();
            }
        },
        async {
            let first = bob.call(&text(7, 101, "b101")).await.unwrap();
            for mid in 102..=100 + EACH {
                bob.call(&text(7, mid, &format!("b{mid}"))).await.unwrap();
            }
            first
        }
    );
    let mut carol_saw = Vec::new();
    for _ in 0..2 * EACH {
        let push = next_message(&mut carol).await;
        carol_saw.push((push.from, push.mid));
    }
    let mut alice_saw = Vec::new();
    let mut bob_saw = Vec::new();
    for _ in 0..EACH {
        let push = next_message(&mut alice).await;
        alice_saw.push((push.from, push.mid));
        let push = next_message(&mut bob).await;
        bob_saw.push((push.from, push.mid));
    }
    // One room order: everyone sees the others' messages in the same order.
    let of = |uid: i64| carol_saw.iter().copied().filter(|(from, _)| *from == uid).collect::<Vec<_>>();
    assert_eq!(of(2), alice_saw, "Alice sees Bob's messages in Carol's order");
    assert_eq!(of(1), bob_saw, "Bob sees Alice's messages in Carol's order");
    assert_eq!(of(1), (1..=EACH).map(|mid| (1, mid)).collect::<Vec<_>>(), "each sender's own order");
    // Once: nothing more arrives, and nobody got their own messages back.
    for player in [&mut alice, &mut bob, &mut carol] {
        assert!(!gets_message(player).await);
    }
    // A retry on another node is answered from the first send, not sent again.
    let mut bob_elsewhere = crate::client_gate::Player::login(&nodes[2], 2).await;
    let retry = bob_elsewhere.call(&text(7, 101, "b101")).await.unwrap();
    assert_eq!(retry.mtime, bob_first.mtime);
    assert!(!gets_message(&mut alice).await, "a retry is not delivered again");
    for node in nodes {
        node.stop().await;
    }
}

/// Runs `scripts/redis-cluster.sh` with `args`.
fn cluster_script(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/redis-cluster.sh");
    let status = std::process::Command::new("bash").arg(script).args(args).status().unwrap();
    assert!(status.success(), "redis-cluster.sh {args:?}");
}

/// Starts a fresh cluster of its own on `base`..`base+5` (for tests that
/// break it); returns what puts a node's config on it, in a fresh namespace.
fn own_cluster(base: &'static str) -> impl Fn(&mut rtm_server::Config) {
    cluster_script(&["stop", base]);
    cluster_script(&["start", base]);
    let namespace = fresh_namespace();
    let configure = move |c: &mut rtm_server::Config| {
        use_redis(c, &namespace);
        c.engine.redis_nodes = vec![format!("127.0.0.1:{base}")];
    };
    configure
}

/// `kill -9` of a master under concurrent writers, on a cluster of its own
/// (ports 17101-17106) so the other tests keep theirs. With
/// `redis_wait_replicas = 1` no acknowledged change is lost; the failed
/// shard refuses writes (20003, fast) until a replica takes over and has a
/// replica again; both nodes and a listener get every acknowledged change.
#[tokio::test]
async fn a_master_killed_under_writers_loses_nothing_acknowledged() {
    use std::collections::{BTreeSet, HashMap};
    use std::sync::{Arc, Mutex};
    const BASE: &str = "17101";
    let on_cluster = own_cluster(BASE);
    let configure = |c: &mut rtm_server::Config| {
        on_cluster(c);
        c.engine.redis_wait_replicas = 1;
        c.engine.redis_wait_ms = 500;
        c.engine.redis_op_timeout_ms = 1000;
        c.engine.redis_check_ms = 200;
    };
    let mut a = TestServer::start_with(configure).await;
    let mut b = TestServer::start_with(configure).await;
    a.assert_running().await;
    b.assert_running().await;
    let mut listener = b.client().await;
    listener.call(&SetListen { room: Some(true), ev: Some(true), ..SetListen::default() }).await.unwrap();

    let started = Instant::now();
    let acked: Arc<Mutex<Vec<(i64, i64)>>> = Arc::default();
    let failures: Arc<Mutex<Vec<(Duration, i64)>>> = Arc::default();
    let reasons: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let successes_after: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let writers: Vec<_> = (0..4i64)
        .map(|w| {
            let (addr, acked, failures, successes) = (a.addr, acked.clone(), failures.clone(), successes_after.clone());
            let reasons = reasons.clone();
            tokio::spawn(async move {
                let mut api = Client::connect(addr, PID, SECRET).await;
                let mut uid = w * 1_000_000;
                while started.elapsed() < Duration::from_secs(10) {
                    uid += 1;
                    // 60 rooms per writer: every master gets some.
                    let rid = w * 1000 + uid % 60;
                    match api.call(&AddRoomMember { rid, uid }).await {
                        Ok(_) => {
                            acked.lock().unwrap().push((rid, uid));
                            successes.lock().unwrap().push(started.elapsed());
                        }
                        Err(e) => {
                            failures.lock().unwrap().push((started.elapsed(), e.code));
                            let t = started.elapsed().as_millis() / 500 * 500;
                            reasons.lock().unwrap().insert(format!("{t:>5} ms: {} {}", e.code, e.ex));
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid_file = format!("/tmp/rtm-redis-cluster-{BASE}/{BASE}/redis.pid");
    let victim = std::fs::read_to_string(&pid_file).unwrap();
    let killed_at = started.elapsed();
    assert!(std::process::Command::new("kill").args(["-9", victim.trim()]).status().unwrap().success());
    // An operator brings the dead node back (it rejoins as a replica).
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster_script(&["start-node", BASE, BASE]);
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let failures = failures.lock().unwrap().clone();
    assert!(!failures.is_empty(), "the failover was not noticed");
    let reasons = reasons.lock().unwrap().clone();
    for reason in &reasons {
        eprintln!("refused at {reason}");
    }
    assert!(failures.iter().all(|(_, code)| *code == 20003), "failures answer 20003: {reasons:?}");
    let first_failure = failures.iter().map(|(t, _)| *t).min().unwrap();
    let last_failure = failures.iter().map(|(t, _)| *t).max().unwrap();
    assert!(
        successes_after.lock().unwrap().iter().any(|t| *t > last_failure),
        "writes to the failed shard never came back"
    );

    // Nothing acknowledged is lost: node B has every change.
    let mut by_room: HashMap<i64, BTreeSet<i64>> = HashMap::new();
    for (rid, uid) in &acked {
        by_room.entry(*rid).or_default().insert(*uid);
    }
    let mut api = b.client().await;
    let mut lost = 0;
    for (rid, uids) in &by_room {
        let members: BTreeSet<i64> = api.call(&GetRoomMembers { rid: *rid }).await.unwrap().uids.into_iter().collect();
        lost += uids.difference(&members).count();
    }
    // The listener on B heard every acknowledged join, once.
    let mut heard: HashMap<(i64, i64), usize> = HashMap::new();
    let wanted: BTreeSet<(i64, i64)> = acked.iter().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !wanted.iter().all(|k| heard.contains_key(k)) && Instant::now() < deadline {
        if let Ok((event, uid, data)) = tokio::time::timeout(Duration::from_secs(1), next_event(&mut listener)).await {
            if event == "member_joined" {
                *heard.entry((data["rid"].as_i64().unwrap(), uid)).or_default() += 1;
            }
        }
    }
    let unheard = wanted.iter().filter(|k| !heard.contains_key(k)).count();
    let twice = heard.values().filter(|n| **n > 1).count();
    eprintln!(
        "failover: killed at {killed_at:?}; {} acknowledged, {} refused (20003) from {first_failure:?} to \
         {last_failure:?} (window {:?}); lost {lost}; listener missed {unheard}, heard twice {twice}",
        acked.len(),
        failures.len(),
        last_failure - first_failure,
    );
    assert_eq!(lost, 0, "acknowledged changes lost");
    assert_eq!((unheard, twice), (0, 0));
    // Both nodes take writes and hear each other again.
    a.client().await.call(&AddRoomMember { rid: 424242, uid: 1 }).await.unwrap();
    eventually(&mut api, vec![1], async |c| c.call(&GetRoomMembers { rid: 424242 }).await.unwrap().uids).await;
    a.stop().await;
    b.stop().await;
    cluster_script(&["stop", BASE]);
}

#[tokio::test]
async fn kickouts_and_single_login_reach_sessions_on_other_nodes() {
    use crate::client_gate::Player;
    let namespace = fresh_namespace();
    let single = |c: &mut rtm_server::Config| {
        use_redis(c, &namespace);
        c.sessions.multi_login = rtm_server::config::MultiLogin::Single;
    };
    let a = TestServer::start_with(single).await;
    let b = TestServer::start_with(single).await;
    // `kickout` on node B closes the session on node A.
    let mut player = Player::login(&a, 5).await;
    b.client().await.call(&Kickout { uid: 5, ce: None }).await.unwrap();
    assert_eq!(player.closed().await, vec!["kickout"]);
    // The block list too.
    let mut player = Player::login(&a, 6).await;
    b.client().await.call(&AddProjectBlack { uid: 6, btime: 60 }).await.unwrap();
    assert_eq!(player.closed().await, vec!["kickout"]);
    // A login on node B closes the user's older session on node A, not itself.
    let mut older = Player::login(&a, 7).await;
    let mut newer = Player::login(&b, 7).await;
    assert_eq!(older.closed().await, vec!["kickout"]);
    assert!(newer.call(&rtm_protocol::client::GetServerTime {}).await.is_ok());
    a.stop().await;
    b.stop().await;
}

/// With the whole cluster gone, a change fails fast and clearly (20003
/// after the operation timeout, never a hang), reads go on from the
/// node's cache, `/readyz` says the node is not ready, and the metrics
/// count the failed round trips. On a cluster of its own (17201-17206).
#[tokio::test]
async fn without_redis_changes_fail_fast_reads_go_on_and_readyz_says_so() {
    const BASE: &str = "17201";
    let on_cluster = own_cluster(BASE);
    let configure = |c: &mut rtm_server::Config| {
        on_cluster(c);
        c.engine.redis_op_timeout_ms = 500;
    };
    let node = TestServer::start_full(configure, true, false).await;
    let mut api = node.client().await;
    api.call(&AddRoomMembers { rid: 3, uids: vec![1, 2] }).await.unwrap();
    assert_eq!(node.http_get("/readyz").await.0, 200);
    let metrics = parse_exposition(&node.http_get("/metrics").await.1);
    assert_eq!(metrics.get("rtm_redis_up"), Some(&1.0));
    assert!(metrics.get("rtm_redis_calls_total").is_some_and(|n| *n > 0.0));

    cluster_script(&["stop", BASE]);
    let started = Instant::now();
    let refused = api.call(&AddRoomMember { rid: 3, uid: 9 }).await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(refused.code, 20003, "{refused:?}");
    assert!(refused.ex.contains("unavailable"), "{refused:?}");
    assert!(waited < Duration::from_secs(3), "refused after {waited:?}");
    // Reads are served from the node's cache.
    assert_eq!(api.call(&GetRoomMembers { rid: 3 }).await.unwrap().uids, vec![1, 2]);
    assert_eq!(node.http_get("/readyz").await, (503, "redis unreachable (engine.kind = redis)\n".to_owned()));
    let metrics = parse_exposition(&node.http_get("/metrics").await.1);
    assert_eq!(metrics.get("rtm_redis_up"), Some(&0.0));
    assert!(metrics.get("rtm_redis_errors_total").is_some_and(|n| *n > 0.0));
    node.stop().await;
}

/// An SDK's automatic relogin may land on another node: the first node's
/// relogin grace must not take the rooms away.
#[tokio::test]
async fn a_relogin_on_another_node_keeps_the_rooms() {
    use crate::client_gate::Player;
    let namespace = fresh_namespace();
    let short_grace = |c: &mut rtm_server::Config| {
        use_redis(c, &namespace);
        c.sessions.relogin_grace_secs = 1;
    };
    let a = TestServer::start_with(short_grace).await;
    let b = TestServer::start_with(short_grace).await;
    let mut player = Player::login(&a, 20).await;
    player.call(&rtm_protocol::client::EnterRoom { rid: 1 }).await.unwrap();
    drop(player);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let player = Player::login(&b, 20).await; // the relogin, on node B
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut api = b.client().await;
    assert_eq!(api.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, vec![20], "kept across the relogin");
    drop(player);
    a.stop().await;
    b.stop().await;
}

/// `redis-cli -p port args…` (one node, no redirects): its output.
fn redis_at(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli").args(["-p", &port.to_string()]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Resharding while nodes run: the slot of one room's partition moves to
/// another master (`SETSLOT IMPORTING`/`MIGRATING`, `MIGRATE` of its keys,
/// `SETSLOT NODE`), by hand as `redis-cli --cluster reshard` does it. While
/// it moves, changes to that partition are refused (20003: the functions
/// never run half on one master and half on the other); afterwards both
/// nodes follow the partition on its new master, with nothing lost, and a
/// listener hears every change once. On a cluster of its own (17401-17406).
#[tokio::test]
async fn a_partition_moved_to_another_master_goes_on() {
    const BASE: &str = "17401";
    let on_cluster = own_cluster(BASE);
    let configure = |c: &mut rtm_server::Config| {
        on_cluster(c);
        c.engine.redis_op_timeout_ms = 500;
        c.engine.redis_check_ms = 200;
    };
    let a = TestServer::start_with(configure).await;
    let b = TestServer::start_with(configure).await;
    let mut listener = b.client().await;
    listener.call(&SetListen { room: Some(true), ev: Some(true), ..SetListen::default() }).await.unwrap();
    let mut api = a.client().await;
    const RID: i64 = 41;
    api.call(&AddRoomMembers { rid: RID, uids: vec![1, 2] }).await.unwrap();

    // The partition's slot, who serves it, and another master.
    let base: u16 = BASE.parse().unwrap();
    let members_key = cluster_keys_at(BASE, &format!("*:r:{PID}:{RID}:m"))
        .into_iter()
        .find(|key| key.ends_with(&format!(":r:{PID}:{RID}:m")))
        .expect("the room's members key");
    let slot: u16 = redis_at(base, &["CLUSTER", "KEYSLOT", &members_key]).parse().unwrap();
    let masters: Vec<(String, u16, bool)> = redis_at(base, &["CLUSTER", "NODES"])
        .lines()
        .filter(|line| line.contains("master") && !line.contains("fail"))
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let port = fields[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
            let serves = fields[8..].iter().any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                lo.parse::<u16>().is_ok_and(|lo| lo <= slot) && hi.parse::<u16>().is_ok_and(|hi| slot <= hi)
            });
            (fields[0].to_owned(), port, serves)
        })
        .collect();
    let source = masters.iter().find(|m| m.2).expect("a master serves the slot").clone();
    let target = masters.iter().find(|m| !m.2).expect("another master").clone();
    let slot_arg = slot.to_string();
    assert_eq!(redis_at(target.1, &["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &source.0]), "OK");
    assert_eq!(redis_at(source.1, &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &target.0]), "OK");

    // Mid-move: refused quickly, and made nowhere.
    let started = Instant::now();
    let refused = api.call(&AddRoomMember { rid: RID, uid: 3 }).await.unwrap_err();
    assert_eq!(refused.code, 20003, "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "refused after {:?}", started.elapsed());

    loop {
        let keys = redis_at(source.1, &["CLUSTER", "GETKEYSINSLOT", &slot_arg, "1000"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let mut args = vec!["MIGRATE", "127.0.0.1", &target.1.to_string(), "", "0", "5000", "KEYS"]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        args.extend(keys.iter().map(|k| k.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(redis_at(source.1, &args), "OK");
    }
    for (_, port, _) in &masters {
        assert_eq!(redis_at(*port, &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &target.0]), "OK");
    }

    // Moved: changes go on, on either node, and both see all of them.
    api.call(&AddRoomMember { rid: RID, uid: 4 }).await.unwrap();
    let mut on_b = b.client().await;
    on_b.call(&AddRoomMember { rid: RID, uid: 5 }).await.unwrap();
    for node in [&mut api, &mut on_b] {
        eventually(node, vec![1, 2, 4, 5], async |c: &mut Client| {
            let mut uids = c.call(&GetRoomMembers { rid: RID }).await.unwrap().uids;
            uids.sort_unstable();
            uids
        })
        .await;
    }
    let mut heard = Vec::new();
    for _ in 0..4 {
        let (event, uid, data) = next_event(&mut listener).await;
        assert_eq!(data["rid"].as_i64(), Some(RID));
        heard.push((event, uid));
    }
    let joined = |uid| ("member_joined".to_owned(), uid);
    assert_eq!(heard, vec![joined(1), joined(2), joined(4), joined(5)]);
    let extra = tokio::time::timeout(Duration::from_millis(300), next_event(&mut listener)).await;
    assert!(extra.is_err(), "an event came twice, or the refused change was made: {extra:?}");
    a.stop().await;
    b.stop().await;
    cluster_script(&["stop", BASE]);
}

/// Runs `redis-cli -c -p 17001 args…` and returns its output.
fn redis_cli(args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli").args(["-c", "-p", "17001"]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A failover without `WAIT` can lose the newest change of a partition; the
/// promoted replica then gives its sequence number to the next change.
/// Nodes that applied the lost change must not take the new one for a
/// duplicate: the broken chain makes them reload, and they agree with
/// Redis again. Simulated by undoing the newest change in Redis by hand.
#[tokio::test]
async fn a_lost_change_whose_number_is_used_again_is_not_taken_for_a_duplicate() {
    let (nodes, namespace) = nodes(2).await;
    let mut a = nodes[0].client().await;
    let mut b = nodes[1].client().await;
    a.call(&AddRoomMember { rid: 777, uid: 10 }).await.unwrap();
    // The partition's keys, found by their room.
    let members_key = redis_cli(&["--scan", "--pattern", &format!("{namespace}:*:r:{PID}:777:m")]);
    let members_key = if members_key.is_empty() {
        // `--scan` visits one node; ask every master.
        (17001..=17006)
            .map(|port| {
                let out = std::process::Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "--scan", "--pattern", &format!("{namespace}:*:r:{PID}:777:m")])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            })
            .find(|k| !k.is_empty())
            .expect("the room's member set")
    } else {
        members_key
    };
    let prefix = members_key.strip_suffix(&format!(":r:{PID}:777:m")).unwrap().to_owned();
    let meta = format!("{prefix}:meta");
    let seq_before = redis_cli(&["HGET", &meta, "seq"]);
    let last_before = redis_cli(&["HGET", &meta, "last"]);
    a.call(&AddRoomMember { rid: 777, uid: 11 }).await.unwrap();
    eventually(&mut b, vec![10, 11], async |c| c.call(&GetRoomMembers { rid: 777 }).await.unwrap().uids).await;
    // Redis "loses" that change: state, sequence, chain head and log entry.
    let lost_seq: u64 = seq_before.parse::<u64>().unwrap() + 1;
    redis_cli(&["SREM", &members_key, "11"]);
    redis_cli(&["HSET", &meta, "seq", &seq_before, "last", &last_before]);
    redis_cli(&["XDEL", &format!("{prefix}:log"), &format!("{lost_seq}-1")]);
    // As on a replica that never had the entry: the stream's top id goes back too.
    redis_cli(&["XSETID", &format!("{prefix}:log"), &format!("{seq_before}-1")]);
    // The next change gets the lost change's number.
    a.call(&AddRoomMember { rid: 777, uid: 12 }).await.unwrap();
    assert_eq!(redis_cli(&["HGET", &meta, "seq"]), lost_seq.to_string());
    for client in [&mut a, &mut b] {
        eventually(client, vec![10, 12], async |c| c.call(&GetRoomMembers { rid: 777 }).await.unwrap().uids).await;
    }
    for node in nodes {
        node.stop().await;
    }
}

/// The keys of namespace `namespace` matching `pattern`, on every node
/// (a replica lists its master's keys again: once each here).
fn cluster_keys(namespace: &str, pattern: &str) -> Vec<String> {
    cluster_keys_at("17001", &format!("{namespace}:{pattern}"))
}

/// The keys matching `pattern` on every node of the cluster on `base`.
fn cluster_keys_at(base: &str, pattern: &str) -> Vec<String> {
    let out = std::process::Command::new("redis-cli")
        .args(["--cluster", "call", &format!("127.0.0.1:{base}"), "KEYS", pattern])
        .output()
        .unwrap();
    // Lines are "host:port: key"; other lines are redis-cli's own.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once(": ").map(|(_, key)| key.trim().to_owned()))
        .filter(|key| !key.is_empty() && !key.starts_with(">>>"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn history_is_one_for_every_node_and_bounded_in_redis() {
    let namespace = fresh_namespace();
    let node = || {
        TestServer::start_with(|c| {
            use_redis(c, &namespace);
            let keep = rtm_server::config::RetentionOverride { max_per_room: Some(50), ..Default::default() };
            c.projects[0].history = Some(keep);
        })
    };
    let (a, b) = (node().await, node().await);
    let (mut on_a, mut on_b) = (a.client().await, b.client().await);
    on_a.call(&AddRoomMember { rid: 5, uid: 1 }).await.unwrap();
    for mid in 1..=300 {
        let text = rtm_protocol::client::MessageBody::Text(format!("m{mid}"));
        on_a.call(&SendRoomMsg { mtype: 51, from: 1, rid: 5, mid, msg: text, attrs: String::new() }).await.unwrap();
    }
    // Node B reads what node A sent: history is in Redis, not on a node.
    let page = GetRoomMsg { uid: 1, rid: 5, desc: true, num: 5, begin: 0, end: 0, lastid: 0, mtypes: None };
    let rows = on_b.call(&page).await.unwrap().msgs;
    assert_eq!(rows.iter().map(|r| r.mid).collect::<Vec<_>>(), vec![300, 299, 298, 297, 296]);
    let count = GetRoomMsgCount { uid: None, rid: 5, begin: 0, end: 0, mtypes: None };
    assert_eq!(on_b.call(&count).await.unwrap().count, 50, "the project keeps 50 a room");
    let mut rest = Vec::new();
    let mut lastid = rows[4].id;
    loop {
        let older = on_b.call(&GetRoomMsg { lastid, num: 20, ..page.clone() }).await.unwrap().msgs;
        let Some(last) = older.last() else { break };
        lastid = last.id;
        rest.extend(older.iter().map(|r| r.mid));
    }
    assert_eq!(rest, (251..=295).rev().collect::<Vec<_>>(), "the 50 newest, in pages, and no older one");

    on_b.call(&DelMsg { mid: 300, from: 1, xid: 5, kind: 3 }).await.unwrap();
    let gone = on_a.call(&GetMsg { mid: 300, from: 1, xid: 5, kind: 3 }).await.unwrap_err();
    assert_eq!(gone.code, rtm_protocol::ErrorCode::MessageNotFound.code());
    let kept = on_a.call(&GetMsg { mid: 299, from: 1, xid: 5, kind: 3 }).await.unwrap();
    assert_eq!(kept.msg, rtm_protocol::client::MessageBody::Text("m299".into()));

    // In Redis: one stream for the room, trimmed near the 50 kept, expiring after the retention.
    let streams = cluster_keys(&namespace, "*:r:*:5:h");
    assert_eq!(streams.len(), 1, "{streams:?}");
    let length: i64 = redis_cli(&["XLEN", &streams[0]]).parse().unwrap();
    assert!((50..=200).contains(&length), "XLEN {length}: trimmed approximately to 50");
    let ttl: i64 = redis_cli(&["PTTL", &streams[0]]).parse().unwrap();
    assert!(ttl > 0, "the stream expires once its newest message is past the retention (PTTL {ttl})");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn room_deadlines_fire_once_however_many_sweep() {
    let (nodes, namespace) = nodes(3).await;
    let mut listeners = Vec::new();
    for node in &nodes {
        let mut listener = node.client().await;
        listener.call(&SetListen { room: Some(true), ev: Some(true), ..SetListen::default() }).await.unwrap();
        listeners.push(listener);
    }
    let mut backend = nodes[0].client().await;
    const ROOMS: i64 = 40;
    let until = now_secs() + 2;
    for rid in 1..=ROOMS {
        // Every policy at work: half end with their window, half go idle first.
        let idle = (rid % 2 == 0).then_some(1);
        let room = CreateRoom { rid: Some(rid), valid_until: Some(until), idle_seconds: idle, ..CreateRoom::default() };
        backend.call(&room).await.unwrap();
    }
    // The nodes made the rooms' partitions: sweep them from outside too, as
    // fast as redis-cli goes, while the deadlines pass.
    let prefixes: Vec<String> =
        cluster_keys(&namespace, "*:due").iter().map(|key| key.trim_end_matches(":due").to_owned()).collect();
    assert!(!prefixes.is_empty());
    let sweeping = std::thread::spawn(move || {
        let end = std::time::Instant::now() + Duration::from_secs(4);
        let mut calls = 0;
        while std::time::Instant::now() < end {
            for prefix in &prefixes {
                redis_cli(&["FCALL", "rtm_sweep", "1", prefix, "1000"]);
                calls += 1;
            }
        }
        calls
    });
    let mut released = Vec::new();
    for listener in &mut listeners {
        let mut count = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, listener.read_frame()).await {
            if let rtm_protocol::Frame::Quest(quest) = frame {
                if &quest.method[..] == b"pushevent" {
                    let event: PushEvent = rtm_protocol::payload::decode(quest.encoding, &quest.payload).unwrap();
                    count += i64::from(event.event == "room_released");
                }
            }
        }
        released.push(count);
    }
    let calls = sweeping.join().unwrap();
    assert!(calls > 40, "the outside sweeper ran ({calls} calls)");
    assert_eq!(released, vec![ROOMS; 3], "every listener, on every node, heard each room's release once");
    for node in &nodes {
        let mut c = node.client().await;
        let page = c.call(&ListRooms::default()).await.unwrap();
        assert!(page.rooms.is_empty(), "no scheduled room is left: {page:?}");
    }
    assert!(cluster_keys(&namespace, "*:r:*:s").is_empty(), "no schedule is left in Redis");
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn a_dead_nodes_partitions_are_swept_by_the_others() {
    let (nodes, namespace) = nodes(1).await;
    let mut backend = nodes[0].client().await;
    let mut listener = nodes[0].client().await;
    let released = SetListen { events: Some(vec!["room_released".into()]), ..SetListen::default() };
    listener.call(&released).await.unwrap();
    // A node that died a moment ago: its last heartbeat is now, and it
    // sorts first, so it owns every other partition until it is 5 s stale.
    let live = loop {
        let keys = cluster_keys(&namespace, "*:nodes");
        if let Some(key) = keys.into_iter().next() {
            break key;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let redis_now_ms = {
        let time = redis_cli(&["TIME"]);
        let mut parts = time.lines();
        let secs: i64 = parts.next().unwrap().parse().unwrap();
        let micros: i64 = parts.next().unwrap().parse().unwrap();
        secs * 1000 + micros / 1000
    };
    redis_cli(&["ZADD", &live, &redis_now_ms.to_string(), "0"]);
    // Let the live node's next heartbeat see it and give up its share.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    const ROOMS: i64 = 20;
    // Two seconds ahead: one was refused (valid_until = valid_from) when a
    // second boundary passed while the 20 rooms were being created.
    let ends = now_secs() + 2;
    for rid in 1..=ROOMS {
        backend.call(&CreateRoom { rid: Some(rid), valid_until: Some(ends), ..CreateRoom::default() }).await.unwrap();
    }
    let started = Instant::now();
    let mut heard = Vec::new();
    while heard.len() < ROOMS as usize {
        let (name, _, _) = tokio::time::timeout(Duration::from_secs(10), next_event(&mut listener))
            .await
            .expect("every room released within 10 s");
        assert_eq!(name, "room_released");
        heard.push(started.elapsed());
    }
    let (first, last) = (heard[0], heard[heard.len() - 1]);
    // The live node's rooms end 1-2 s after `started`; the dead node's
    // heartbeat (5 s) goes stale about 3.7 s after it.
    assert!(first < Duration::from_millis(3000), "the live node's own rooms on time: {first:?}");
    assert!(
        last > Duration::from_millis(3000) && last < Duration::from_secs(9),
        "the dead node's rooms once its heartbeat was stale (5 s): {last:?}"
    );
    nodes.into_iter().next().unwrap().stop().await;
}

#[tokio::test]
async fn expired_bans_leave_redis() {
    let (nodes, namespace) = nodes(1).await;
    let mut backend = nodes[0].client().await;
    backend.call(&AddRoomBan { rid: Some(4), uid: 1, btime: 1 }).await.unwrap();
    backend.call(&AddRoomBan { rid: Some(4), uid: 2, btime: 0 }).await.unwrap();
    backend.call(&AddProjectBlack { uid: 3, btime: 1 }).await.unwrap();
    let bans = || {
        let mut held = Vec::new();
        for key in cluster_keys(&namespace, "*:b:*") {
            held.extend(
                redis_cli(&["HKEYS", &key]).lines().map(|uid| format!("{}={uid}", &key[key.rfind(':').unwrap() + 1..])),
            );
        }
        held.sort();
        held
    };
    assert_eq!(bans(), vec!["black=3", "r4=1", "r4=2"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while bans() != vec!["r4=2"] {
        assert!(Instant::now() < deadline, "the expired bans are still in Redis: {:?}", bans());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The permanent one stays, and the node still knows it.
    assert!(backend.call(&IsBanOfRoom { rid: 4, uid: 2 }).await.unwrap().ok);
    assert!(!backend.call(&IsBanOfRoom { rid: 4, uid: 1 }).await.unwrap().ok);
    nodes.into_iter().next().unwrap().stop().await;
}

#[tokio::test]
async fn a_window_without_end_survives_extensions_on_every_node() {
    let (nodes, _) = nodes(2).await;
    let (mut a, mut b) = (nodes[0].client().await, nodes[1].client().await);
    // Far past what a Lua double holds exactly: the functions clamp it.
    let created =
        a.call(&CreateRoom { rid: Some(9), valid_until: Some(i64::MAX / 1000), ..CreateRoom::default() }).await;
    let created = created.unwrap();
    let extended = a.call(&ExtendRoom { rid: 9, minutes: Some(15), auto: Some(true) }).await.unwrap();
    assert!(extended.valid_until >= created.valid_until.min(9_007_199_254_740), "{extended:?}");
    // The other node followed both changes (a change it cannot read would stall its partition).
    eventually(&mut b, true, async |c| c.call(&GetRoom { rid: 9 }).await.is_ok_and(|room| room.auto_extend)).await;
    b.call(&AddRoomMember { rid: 9, uid: 1 }).await.unwrap();
    eventually(&mut a, vec![1], async |c| c.call(&GetRoomMembers { rid: 9 }).await.unwrap().uids).await;
    for node in nodes {
        node.stop().await;
    }
}

/// A recording runs on the node that started it (A) and holds the
/// messages every node accepted, in room order, read from the room's
/// history in Redis; any node answers for it: node B acquired its resource
/// id, queries it, changes whom it records and stops it, through Redis.
#[tokio::test]
async fn a_recording_is_answered_for_by_every_node() {
    use crate::recording::{lines_of, said, scratch, text};
    let namespace = fresh_namespace();
    let dir = scratch("redis");
    let root = dir.join("recordings");
    let recording_dir = root.display().to_string();
    let a = TestServer::start_with(|c| {
        use_redis(c, &namespace);
        c.recording.dir = recording_dir;
        c.recording.poll_ms = 10;
    })
    .await;
    let b = TestServer::start_with(|c| use_redis(c, &namespace)).await;
    let (mut on_a, mut on_b) = (a.client().await, b.client().await);
    on_a.call(&AddRoomMember { rid: 30, uid: 1 }).await.unwrap();
    on_b.call(&text(1, 30, 1, "before")).await.unwrap();
    // Acquired on B, started on A: A runs it.
    let resource_id = on_b.call(&AcquireRecording { rid: 30 }).await.unwrap().resource_id;
    let start = StartRecording { resource_id, rid: 30, mode: "mix".into(), ..StartRecording::default() };
    let sid = on_a.call(&start).await.unwrap().sid;
    let again = on_b.call(&start).await.unwrap_err();
    assert_eq!(again.code, 200080, "one recording per resource id, whichever node: {again:?}");
    assert_eq!(on_b.call(&QueryRecording { sid: sid.clone() }).await.unwrap().status, 5);
    let mut sent = Vec::new();
    for mid in 2..12 {
        let (node, from) = if mid % 2 == 0 { (&mut on_b, 2) } else { (&mut on_a, 3) };
        node.call(&text(from, 30, mid, &format!("m{mid}"))).await.unwrap();
        sent.push((from, format!("m{mid}")));
    }
    // B changes whom it records; A applies it after its next pass (to
    // messages it has not read yet: here, after it has read those above).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let update = UpdateRecording { sid: sid.clone(), uids: None, exclude_uids: Some(vec![3]) };
    on_b.call(&update).await.unwrap();
    let recorded_before_update = sent.clone();
    // Taken by A once the registry entry has no lists waiting any more.
    let entry = cluster_keys(&namespace, &format!("*:rec:{sid}"));
    assert_eq!(entry.len(), 1, "{entry:?}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while redis_cli(&["HEXISTS", &entry[0], "subs"]) != "0" {
        assert!(Instant::now() < deadline, "node A never took the new lists");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    on_a.call(&text(3, 30, 12, "excluded")).await.unwrap();
    on_b.call(&text(2, 30, 13, "m13")).await.unwrap();
    let stopped = on_b.call(&StopRecording { sid: sid.clone() }).await.unwrap();
    assert_eq!(stopped.upload_status, "uploaded");
    let (manifest, lines) = lines_of(&root, &stopped.files[0].filename);
    assert_eq!(manifest["complete"], true);
    let mut expected = recorded_before_update;
    expected.push((2, "m13".into()));
    assert_eq!(said(&lines), expected, "every node's messages, once, in room order; none from before or excluded");
    let status = on_b.call(&QueryRecording { sid: sid.clone() }).await.unwrap();
    assert_eq!((status.status, status.files), (8, stopped.files));
    let twice = on_b.call(&StopRecording { sid: sid.clone() }).await.unwrap_err();
    assert_eq!(twice.code, 200083, "{twice:?}");
    let unknown = on_b.call(&QueryRecording { sid: "no-such".into() }).await.unwrap_err();
    assert_eq!(unknown.code, 200082, "{unknown:?}");
    a.stop().await;
    b.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
