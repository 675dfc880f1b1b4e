//! Short runs against an in-process server: the harness counts correctly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rtm_loadtest::driver::{self, LoadConfig, Stop};
use rtm_loadtest::scenarios;
use rtm_loadtest::workload::{Op, Workload};
use rtm_protocol::methods::{GetRoomCount, Method, RoomCounts, ServerAuth, Signed};
use rtm_protocol::{payload, write_quest, Encoding, Frame};
use rtm_server::config::ProjectConfig;
use rtm_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PID: i64 = 5;
const SECRET: &str = "loadtest-secret";

/// Must run inside the test's runtime (it spawns the server there).
fn start_server() -> std::net::SocketAddr {
    start_server_with(|_| {})
}

fn start_server_with(adjust: impl FnOnce(&mut Config)) -> std::net::SocketAddr {
    let mut config = Config { projects: vec![ProjectConfig::new(PID, SECRET)], ..Config::default() };
    config.metrics.listen.clear();
    config.storage.data_dir.clear();
    // The client gate on any free port, so tests can run side by side.
    config.gates.client.listeners =
        vec![rtm_server::config::Endpoint { addr: "127.0.0.1:0".parse().unwrap(), tls: false }];
    config.gates.client.websocket_listeners.clear();
    adjust(&mut config);
    let listener = rtm_server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(rtm_server::run(listener, config, std::future::pending()));
    addr
}

fn workload(mix: Vec<(Op, u32)>, rooms: i64) -> Arc<Workload> {
    Arc::new(Workload { pid: PID, secret: SECRET.into(), rooms, uids: 1_000, room_size: 20, mix, seed: 3 })
}

/// Asks the server how many members `rids` have, in total.
async fn total_members(addr: std::net::SocketAddr, rids: Vec<i64>) -> i64 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let auth = ServerAuth::new(PID, SECRET, 1, GetRoomCount::NAME, ts);
    let mut out = BytesMut::new();
    let params = GetRoomCount::new(rids);
    write_quest(&mut out, Encoding::MsgPack, Some(1), GetRoomCount::NAME, &Signed { auth: &auth, params: &params })
        .unwrap();
    stream.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    loop {
        if let Some(Frame::Answer(a)) = Frame::decode(&mut buf, 1 << 20).unwrap() {
            let counts: RoomCounts = payload::decode(a.encoding, &a.payload).unwrap();
            return counts.cn.iter().map(|(_, n)| i64::from(*n)).sum();
        }
        assert!(stream.read_buf(&mut buf).await.unwrap() > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_bounded_run_sends_exactly_that_many() {
    let addr = start_server();
    let config = LoadConfig { addr, connections: 7, pipeline: 4, stop: Stop::Requests(1_003), ..LoadConfig::default() };
    let progress = Arc::new(AtomicU64::new(0));
    let (recorder, elapsed) = driver::run(&config, workload(vec![(Op::Ping, 1)], 10), progress.clone()).await;
    assert_eq!(recorder.answered(), 1_003);
    assert_eq!(progress.load(Ordering::Relaxed), 1_003);
    assert!(recorder.errors.is_empty(), "{:?}", recorder.errors);
    let report = recorder.report("op ping", elapsed, 7, 4);
    assert_eq!(report.requests, 1_003);
    assert!(report.rate > 0.0 && report.latency_us.p50 > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_connections_carry_the_load_in_both_modes() {
    use rtm_protocol::encryption::{Bits, Curve, Mode};
    let dir = std::env::temp_dir().join(format!("rtm-loadtest-ecdh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (private, public) = rtm_server::write_key_pair(Curve::Secp256k1, &dir, false).unwrap();
    let addr = start_server_with(|config| {
        config.gates.server.ecdh.key_path = private.to_string_lossy().into_owned();
        // A plain connection would be closed: the runs below are encrypted.
        config.gates.server.ecdh.required = true;
    });
    let pem = std::fs::read(public).unwrap();
    for mode in [Mode::Package, Mode::Stream] {
        let secure = rtm_loadtest::secure::Secure::encrypted(&pem, mode, Bits::Aes256).unwrap();
        let config = LoadConfig {
            addr,
            connections: 3,
            pipeline: 8,
            stop: Stop::Requests(300),
            secure,
            ..LoadConfig::default()
        };
        let (recorder, _) =
            driver::run(&config, workload(vec![(Op::GetRoomCount, 1)], 10), Arc::new(AtomicU64::new(0))).await;
        assert_eq!(recorder.answered(), 300, "{mode:?}");
        assert!(recorder.errors.is_empty(), "{mode:?}: {:?}", recorder.errors);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_land_on_the_server() {
    let addr = start_server();
    // Adds to one room, with uids drawn from 1..=1000: afterwards the room
    // holds at most 1000 and at least some members, and no call failed.
    let config = LoadConfig { addr, connections: 3, pipeline: 8, stop: Stop::Requests(600), ..LoadConfig::default() };
    let (recorder, _) =
        driver::run(&config, workload(vec![(Op::AddRoomMember, 1)], 1), Arc::new(AtomicU64::new(0))).await;
    assert_eq!(recorder.answered(), 600);
    assert!(recorder.errors.is_empty(), "{:?}", recorder.errors);
    let members = total_members(addr, vec![1]).await;
    assert!((400..=600).contains(&members), "{members} distinct uids of 600 draws from 1000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_adds_every_membership() {
    let addr = start_server();
    let plan = scenarios::FillPlan { first: 1, rooms: 50, members: 130, connections: 4, pipeline: 8 };
    let report =
        scenarios::fill(addr, workload(vec![(Op::Ping, 1)], 50), plan, None, Arc::new(AtomicU64::new(0))).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.quests, 100, "two quests (100 + 30 uids) per room");
    assert_eq!(total_members(addr, (1..=50).collect()).await, 50 * 130);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_run_keeps_its_rate() {
    let addr = start_server();
    let config = LoadConfig {
        addr,
        connections: 4,
        pipeline: 8,
        stop: Stop::After(Duration::from_millis(1000)),
        rate: Some(2_000.0),
        ..LoadConfig::default()
    };
    let (recorder, _) = driver::run(&config, workload(vec![(Op::Ping, 1)], 10), Arc::new(AtomicU64::new(0))).await;
    let n = recorder.answered();
    assert!((1_700..=2_100).contains(&n), "{n} requests at 2000/s for 1 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_counted_by_code() {
    let addr = start_server();
    let wrong = Arc::new(Workload { secret: "wrong".into(), ..(*workload(vec![(Op::GetRoomCount, 1)], 10)).clone() });
    let config = LoadConfig { addr, connections: 2, pipeline: 2, stop: Stop::Requests(10), ..LoadConfig::default() };
    let (recorder, _) = driver::run(&config, wrong, Arc::new(AtomicU64::new(0))).await;
    assert_eq!(recorder.errors.get(&200002), Some(&10));
    let report = recorder.report("op getroomcount", Duration::from_secs(1), 2, 2);
    assert_eq!(report.unexpected_errors(&[]), 10);
    assert_eq!(report.unexpected_errors(&[200002]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_are_counted() {
    let addr = start_server();
    let report = scenarios::hold_connections(addr, 300, Duration::from_millis(10), None, false).await;
    assert_eq!(report.opened, 300);
    assert!(report.connect_rate > 0.0);
}

/// `connections --websocket` against a real client gate's WebSocket endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_websocket_sessions_are_counted() {
    let mut config = Config { projects: vec![ProjectConfig::new(PID, SECRET)], ..Config::default() };
    config.metrics.listen.clear();
    config.storage.data_dir.clear();
    let bind = || rtm_server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let (server_gate, websocket) = (bind(), bind());
    let ws_addr = websocket.local_addr().unwrap();
    let listeners = rtm_server::Listeners {
        server: vec![(server_gate, false)],
        client: vec![],
        websocket: vec![(websocket, false)],
        admin: None,
        recording_api: None,
    };
    tokio::spawn(rtm_server::serve(listeners, config, std::future::pending()));
    let report = scenarios::hold_connections(ws_addr, 100, Duration::from_millis(10), None, true).await;
    assert_eq!(report.opened, 100);
    // Plain FPNN on the WebSocket endpoint is not a session.
    let plain = scenarios::hold_connections(ws_addr, 5, Duration::from_millis(10), None, false).await;
    assert_eq!(plain.opened, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_fails_when_the_data_dir_outgrows_its_bound() {
    use rtm_loadtest::soak::{soak, SoakPlan};
    let dir = std::env::temp_dir().join(format!("rtm-loadtest-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = Config { projects: vec![ProjectConfig::new(PID, SECRET)], ..Config::default() };
    config.metrics.listen.clear();
    config.storage.data_dir = dir.to_string_lossy().into_owned();
    config.gates.client.listeners =
        vec![rtm_server::config::Endpoint { addr: "127.0.0.1:0".parse().unwrap(), tls: false }];
    config.gates.client.websocket_listeners.clear();
    let listener = rtm_server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(rtm_server::run(listener, config, std::future::pending()));
    let load = LoadConfig {
        addr,
        connections: 4,
        stop: Stop::After(Duration::from_secs(20)),
        rate: Some(1_000.0),
        ..LoadConfig::default()
    };
    let plan = SoakPlan {
        every: Duration::from_millis(300),
        warmup: Duration::from_millis(300),
        max_rss_growth: u64::MAX / 2,
        // Every add is logged: any growth past warm-up is too much.
        max_disk_growth: 0,
        server_pid: Some(std::process::id()),
        metrics_url: None,
        data_dir: Some(dir.clone()),
    };
    let started = std::time::Instant::now();
    let mut lines = 0;
    let report = soak(&load, workload(vec![(Op::AddRoomMember, 1)], 100), &plan, |_| lines += 1).await;
    let _ = std::fs::remove_dir_all(&dir);
    let failure = report.failure.expect("the data directory grew past a bound of 0");
    assert!(failure.contains("data directory"), "{failure}");
    // It stopped early, after warm-up, and reported as it went.
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert!(lines >= 2 && report.baseline.is_some());
    assert!(report.lines.iter().all(|l| l.rss.is_some()));
    assert!(report.total.requests > 0 && report.total.errors.is_empty(), "{:?}", report.total.errors);
}

/// `fanout` against a real server: every message reaches every other member
/// of its room exactly once, and the report adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_message_once() {
    let mut config = Config { projects: vec![ProjectConfig::new(PID, SECRET)], ..Config::default() };
    config.metrics.listen.clear();
    config.storage.data_dir.clear();
    config.limits.client_messages_per_second = 0;
    let bind = || rtm_server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let (server_gate, client_gate, websocket) = (bind(), bind(), bind());
    let (server_addr, client_addr) = (server_gate.local_addr().unwrap(), client_gate.local_addr().unwrap());
    let ws_addr = websocket.local_addr().unwrap();
    let listeners = rtm_server::Listeners {
        server: vec![(server_gate, false)],
        client: vec![(client_gate, false)],
        websocket: vec![(websocket, false)],
        admin: None,
        recording_api: None,
    };
    tokio::spawn(rtm_server::serve(listeners, config, std::future::pending()));
    // Over TCP, then over WebSocket, as browsers connect.
    for (client_addr, websocket) in [(client_addr, false), (ws_addr, true)] {
        let plan = rtm_loadtest::fanout::FanoutPlan {
            server_addr,
            client_addr,
            sender_addr: None,
            pid: PID,
            secret: SECRET.into(),
            clients: 60,
            rooms: 3,
            senders: 6,
            rate: 300.0,
            duration: Duration::from_secs(1),
            server_pid: None,
            websocket,
            redis: None,
        };
        let report = rtm_loadtest::fanout::run(plan).await.unwrap();
        assert!(report.sent >= 250, "websocket {websocket}: {report:?}");
        assert_eq!(report.send_errors, 0);
        assert_eq!(report.expected_deliveries, report.sent * 19, "each room has 20 members");
        assert_eq!((report.lost, report.duplicated), (0, 0), "websocket {websocket}: {report:?}");
        assert_eq!(report.deliveries, report.expected_deliveries);
        assert!(report.latency_us.p50 > 0);
    }
}

/// `fanout --redis`: the same fan-out on Redis pub/sub (a `redis-server` of
/// the test's own), checked the same way.
#[tokio::test]
async fn fanout_runs_on_redis_pubsub_too() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    /// Stops the test's redis-server however the test ends.
    struct Stopped(std::process::Child);
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _redis = Stopped(
        std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (.ci/run installs it)"),
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "redis-server did not start");
    let plan = rtm_loadtest::fanout::FanoutPlan {
        server_addr: addr,
        client_addr: addr,
        sender_addr: None,
        pid: PID,
        secret: SECRET.into(),
        clients: 30,
        rooms: 3,
        senders: 3,
        rate: 300.0,
        duration: Duration::from_secs(1),
        server_pid: None,
        websocket: false,
        redis: Some(addr),
    };
    let report = rtm_loadtest::fanout::run(plan).await.unwrap();
    assert!(report.sent >= 250, "{report:?}");
    assert_eq!(report.send_errors, 0);
    assert_eq!(report.expected_deliveries, report.sent * 9, "each room: 10 members, its sender not subscribed");
    assert_eq!((report.lost, report.duplicated), (0, 0), "{report:?}");
    assert_eq!(report.deliveries, report.expected_deliveries);
    assert!(report.latency_us.p50 > 0);
}
