//! Nothing acknowledged is lost: SIGKILL the real binary mid-stream, restart
//! it on the same data directory, and check every acknowledged write.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtm_protocol::client::MessageBody;
use rtm_protocol::methods::{AddRoomMembers, GetRoomMembers, GetRoomMsg, SendRoomMsg};

use crate::support::*;

const DEMO_PID: i64 = 11000001;
const DEMO_SECRET: &str = "demo-secret-for-local-use-only";

struct Server {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Server {
    async fn start(dir: &std::path::Path) -> Self {
        Self::start_with(dir, &[]).await
    }

    /// Starts the binary on a port it picks itself (port 0) and reads the
    /// bound address from its log: a port probed free beforehand could be
    /// taken by another test's server, whose writes would then be checked
    /// against this one's data.
    async fn start_with(dir: &std::path::Path, settings: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rtm-server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(["--set", &format!("storage.data_dir={}", dir.display())])
            .args(["--set", "metrics.listen="])
            // Servers of concurrent tests must not share the client gate's default port.
            .args(["--set", r#"gates.client.listeners=[{addr="127.0.0.1:0"}]"#])
            .args(["--set", "gates.client.websocket_listeners=[]"])
            .args(settings.iter().flat_map(|setting| ["--set", setting]))
            .args(["--log-level", "info", "--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the log to its end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                let fields = &entry["fields"];
                if fields["gate"] == "server" {
                    if let Some(addr) = fields["addr"].as_str().and_then(|a| a.parse::<std::net::SocketAddr>().ok()) {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
            .await
            .unwrap()
            .expect("the server logs its address");
        let server = Self { child, addr };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not come up");
    }

    fn kill(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Batches sent to one room, and which of them were answered OK.
struct Outcome {
    rid: i64,
    sent: Vec<Vec<i64>>,
    acked: Vec<usize>,
}

/// Writes 5-uid batches into room `rid`, 8 in flight, until the connection dies.
async fn write_until_killed(addr: std::net::SocketAddr, rid: i64) -> Outcome {
    let mut outcome = Outcome { rid, sent: Vec::new(), acked: Vec::new() };
    let mut c = Client::connect(addr, DEMO_PID, DEMO_SECRET).await;
    let mut in_flight = std::collections::VecDeque::new();
    let mut next_uid = rid * 1_000_000;
    let started = Instant::now();
    loop {
        let mut out = BytesMut::new();
        while in_flight.len() < 8 && started.elapsed() < Duration::from_secs(10) {
            let uids: Vec<i64> = (next_uid..next_uid + 5).collect();
            next_uid += 5;
            let seq = c.encode_signed(&mut out, &AddRoomMembers { rid, uids: uids.clone() });
            in_flight.push_back((seq, outcome.sent.len()));
            outcome.sent.push(uids);
        }
        if !out.is_empty() && tokio::io::AsyncWriteExt::write_all(&mut c.stream, &out).await.is_err() {
            return outcome;
        }
        let Some(rtm_protocol::Frame::Answer(answer)) = c.read_frame().await else { return outcome };
        let (seq, batch) = in_flight.pop_front().expect("an answer for a quest in flight");
        assert_eq!(answer.seq, seq);
        if answer.status == 0 {
            outcome.acked.push(batch);
        }
    }
}

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 33
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir: PathBuf = std::env::temp_dir().join(format!("rtm-crash-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut seed = 0x5eed_u64 ^ u64::from(std::process::id());
    let mut checked = Vec::new();
    let mut total_acked = 0;
    for round in 0..20i64 {
        let server = Server::start(&dir).await;
        let writers: Vec<_> =
            (0..4).map(|w| tokio::spawn(write_until_killed(server.addr, round * 10 + w + 1))).collect();
        tokio::time::sleep(Duration::from_millis(30 + lcg(&mut seed) % 300)).await;
        server.kill();
        for writer in writers {
            checked.push(writer.await.unwrap());
        }

        // Restart and check every room written so far, this round and before.
        let server = Server::start(&dir).await;
        let mut c = Client::connect(server.addr, DEMO_PID, DEMO_SECRET).await;
        for outcome in &checked {
            let members: HashSet<i64> =
                c.call(&GetRoomMembers { rid: outcome.rid }).await.unwrap().uids.into_iter().collect();
            for &batch in &outcome.acked {
                for uid in &outcome.sent[batch] {
                    assert!(
                        members.contains(uid),
                        "round {round}: acknowledged uid {uid} of room {} lost",
                        outcome.rid
                    );
                }
            }
            for batch in &outcome.sent {
                let present = batch.iter().filter(|uid| members.contains(uid)).count();
                assert!(present == 0 || present == batch.len(), "round {round}: a batch was half applied: {batch:?}");
            }
        }
        total_acked += checked.iter().filter(|o| o.rid > round * 10).map(|o| o.acked.len()).sum::<usize>();
        server.kill();
    }
    assert!(total_acked > 100, "the test acknowledged too few writes to mean anything: {total_acked}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Messages sent to one room, in order, and which were answered OK.
struct Sent {
    rid: i64,
    mids: Vec<i64>,
    acked: Vec<i64>,
}

/// Sends room messages (mids 1, 2, …), 8 in flight, until the connection dies.
async fn send_until_killed(addr: std::net::SocketAddr, rid: i64) -> Sent {
    let mut sent = Sent { rid, mids: Vec::new(), acked: Vec::new() };
    let mut c = Client::connect(addr, DEMO_PID, DEMO_SECRET).await;
    let mut in_flight = std::collections::VecDeque::new();
    let started = Instant::now();
    loop {
        let mut out = BytesMut::new();
        while in_flight.len() < 8 && started.elapsed() < Duration::from_secs(10) {
            let mid = sent.mids.len() as i64 + 1;
            let message = SendRoomMsg {
                mtype: 51,
                from: 9,
                rid,
                mid,
                msg: MessageBody::Text(format!("{rid}:{mid}")),
                attrs: String::new(),
            };
            in_flight.push_back((c.encode_signed(&mut out, &message), mid));
            sent.mids.push(mid);
        }
        if !out.is_empty() && tokio::io::AsyncWriteExt::write_all(&mut c.stream, &out).await.is_err() {
            return sent;
        }
        let Some(rtm_protocol::Frame::Answer(answer)) = c.read_frame().await else { return sent };
        let (seq, mid) = in_flight.pop_front().expect("an answer for a quest in flight");
        assert_eq!(answer.seq, seq);
        if answer.status == 0 {
            sent.acked.push(mid);
        }
    }
}

/// Every message answered with an `mtime` is in history after a SIGKILL
/// and restart, once, in the order it was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill_in_order() {
    let dir: PathBuf = std::env::temp_dir().join(format!("rtm-history-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = ["history.max_per_room=1000000", "storage.fsync=always"];
    let mut seed = 0x4157_u64 ^ u64::from(std::process::id());
    let mut checked: Vec<Sent> = Vec::new();
    let mut total_acked = 0;
    for round in 0..20i64 {
        let server = Server::start_with(&dir, &settings).await;
        let senders: Vec<_> =
            (0..4).map(|w| tokio::spawn(send_until_killed(server.addr, round * 10 + w + 1))).collect();
        tokio::time::sleep(Duration::from_millis(30 + lcg(&mut seed) % 300)).await;
        server.kill();
        for sender in senders {
            let sent = sender.await.unwrap();
            total_acked += sent.acked.len();
            checked.push(sent);
        }

        let server = Server::start_with(&dir, &settings).await;
        let mut c = Client::connect(server.addr, DEMO_PID, DEMO_SECRET).await;
        for sent in &checked {
            let mut stored = Vec::new();
            let mut lastid = 0;
            loop {
                let page =
                    GetRoomMsg { uid: 9, rid: sent.rid, desc: false, num: 20, begin: 0, end: 0, lastid, mtypes: None };
                let page = c.call(&page).await.unwrap();
                stored.extend(page.msgs.iter().map(|row| row.mid));
                if page.num < 20 {
                    break;
                }
                lastid = page.lastid;
            }
            assert!(
                stored.windows(2).all(|w| w[0] < w[1]),
                "round {round}, room {}: history out of order or duplicated: {stored:?}",
                sent.rid
            );
            // Whatever is stored was sent; everything acknowledged is stored.
            assert!(stored.iter().all(|mid| sent.mids.contains(mid)));
            let missing: Vec<_> = sent.acked.iter().filter(|mid| stored.binary_search(mid).is_err()).collect();
            assert!(missing.is_empty(), "round {round}, room {}: acknowledged messages lost: {missing:?}", sent.rid);
        }
        server.kill();
    }
    assert!(total_acked > 100, "the test acknowledged too few messages to mean anything: {total_acked}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A disk that refuses writes (the log file is `/dev/full`, which fails
/// every write with ENOSPC): changes are answered 20001, never OK, the
/// failures are counted, and shutdown still completes.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_failing_disk_turns_acknowledgements_into_errors() {
    let dir = std::env::temp_dir().join(format!("rtm-full-disk-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.join("wal-00000000000000000001.log")).unwrap();
    let data_dir = dir.display().to_string();
    let server = TestServer::start_full(move |c| c.storage.data_dir = data_dir, true, false).await;
    let mut c = server.client().await;
    let err = c.call(&rtm_protocol::methods::AddRoomMember { rid: 1, uid: 1 }).await.unwrap_err();
    assert_eq!(err.code, 20001, "{}", err.ex);
    assert!(err.ex.contains("storage"), "{}", err.ex);
    let (_, text) = server.http_get("/metrics").await;
    assert!(parse_exposition(&text)["rtm_storage_write_errors_total"] >= 1.0);
    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(8), "shutdown does not hang on the failing log");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A recording survives SIGKILL: after each restart it goes on from its
/// saved progress, and once stopped its file holds every acknowledged
/// message of the room exactly once, in order (and nothing never sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_survives_sigkill_with_nothing_lost_or_twice() {
    use rtm_protocol::methods::{AcquireRecording, AddRoomMember, StartRecording, StopRecording};
    let dir: PathBuf = std::env::temp_dir().join(format!("rtm-recording-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Progress saved every 100 ms, so kills land between saves too.
    let settings =
        ["storage.fsync=always", "recording.poll_ms=10", "recording.sync_ms=100", "recording.requests_per_second=1000"];
    let mut seed = 0x5eed_u64 ^ u64::from(std::process::id());
    for round in 0..4i64 {
        let rid = 600 + round;
        let server = Server::start_with(&dir, &settings).await;
        let mut c = Client::connect(server.addr, DEMO_PID, DEMO_SECRET).await;
        c.call(&AddRoomMember { rid, uid: 9 }).await.unwrap();
        let resource = c.call(&AcquireRecording { rid }).await.unwrap().resource_id;
        let start = StartRecording { resource_id: resource, rid, mode: "mix".into(), ..StartRecording::default() };
        let sid = c.call(&start).await.unwrap().sid;
        let sender = tokio::spawn(send_until_killed(server.addr, rid));
        tokio::time::sleep(Duration::from_millis(100 + lcg(&mut seed) % 400)).await;
        server.kill();
        let sent = sender.await.unwrap();

        let server = Server::start_with(&dir, &settings).await;
        let mut c = Client::connect(server.addr, DEMO_PID, DEMO_SECRET).await;
        let stopped = c.call(&StopRecording { sid }).await.unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("recordings").join(&stopped.files[0].filename)).unwrap())
                .unwrap();
        let mut recorded = Vec::new();
        for slice in manifest["slices"].as_array().unwrap() {
            let text = std::fs::read_to_string(dir.join("recordings").join(slice["file"].as_str().unwrap())).unwrap();
            assert_eq!(
                text.len() as u64,
                slice["bytes"].as_u64().unwrap(),
                "round {round}: the slice is cut to its length"
            );
            recorded.extend(
                text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["mid"].as_i64().unwrap()),
            );
        }
        assert!(recorded.windows(2).all(|w| w[0] < w[1]), "round {round}: out of order or twice: {recorded:?}");
        assert!(recorded.iter().all(|mid| sent.mids.contains(mid)), "round {round}: recorded what was never sent");
        let missing: Vec<_> = sent.acked.iter().filter(|mid| recorded.binary_search(mid).is_err()).collect();
        assert!(missing.is_empty(), "round {round}: acknowledged messages not recorded: {missing:?}");
        assert!(!sent.acked.is_empty(), "round {round}: nothing was acknowledged before the kill");
        server.kill();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
