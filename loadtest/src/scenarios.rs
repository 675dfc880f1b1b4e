//! The `fill` and `connections` scenarios, and reading a server's memory.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtm_protocol::methods::{AddRoomMembers, Method, Ping};
use rtm_protocol::{write_quest, Encoding, Frame};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::driver::{run_sources, LoadConfig, QuestSource, Stop};
use crate::secure::{self, Opened, Secure};
use crate::stats::Recorder;
use crate::workload::{Generator, Workload};

/// The server's resident memory in bytes, from `/proc/<pid>/status` (Linux).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The uid of member `k` of room `rid` in a fill: distinct users per room,
/// the same numbers the Redis side of the comparison uses.
pub fn fill_uid(rid: i64, members: usize, k: usize) -> i64 {
    rid * members as i64 + k as i64
}

/// Adds `members` members to each room this connection owns, 100 per quest.
struct FillSource {
    generator: Generator,
    rooms: std::iter::StepBy<std::ops::RangeInclusive<i64>>,
    members: usize,
    current: Option<(i64, usize)>,
}

impl QuestSource for FillSource {
    fn next_quest(&mut self, out: &mut BytesMut, seq: u32) -> bool {
        loop {
            if let Some((rid, done)) = self.current {
                if done < self.members {
                    let end = (done + 100).min(self.members);
                    let uids = (done..end).map(|k| fill_uid(rid, self.members, k)).collect();
                    self.generator.signed(out, seq, &AddRoomMembers { rid, uids });
                    self.current = Some((rid, end));
                    return true;
                }
            }
            match self.rooms.next() {
                Some(rid) => self.current = Some((rid, 0)),
                None => return false,
            }
        }
    }
}

/// What `fill` did.
#[derive(Debug, Clone, Serialize)]
pub struct FillReport {
    /// Rooms filled.
    pub rooms: i64,
    /// Members per room.
    pub members: usize,
    /// Quests sent (each adds up to 100 members).
    pub quests: u64,
    /// Seconds taken.
    pub elapsed_secs: f64,
    /// Memberships added per second.
    pub memberships_per_sec: f64,
    /// Server RSS before, bytes (with `--server-pid`).
    pub rss_before: Option<u64>,
    /// Server RSS after, bytes.
    pub rss_after: Option<u64>,
    /// RSS growth per membership, bytes.
    pub bytes_per_membership: Option<f64>,
    /// Errors by code.
    pub errors: std::collections::BTreeMap<String, u64>,
}

/// What to fill: rooms `first..first + rooms`, `members` members each.
#[derive(Debug, Clone, Copy)]
pub struct FillPlan {
    /// First room id.
    pub first: i64,
    /// Rooms.
    pub rooms: i64,
    /// Members per room.
    pub members: usize,
    /// Connections to fill over.
    pub connections: usize,
    /// Quests in flight per connection.
    pub pipeline: usize,
}

/// Fills the rooms of `plan`, reading the server's RSS around it when
/// `server_pid` is given.
pub async fn fill(
    addr: SocketAddr,
    workload: Arc<Workload>,
    plan: FillPlan,
    server_pid: Option<u32>,
    progress: Arc<AtomicU64>,
) -> FillReport {
    let FillPlan { first, rooms, members, connections, pipeline } = plan;
    let rss_before = server_pid.and_then(rss_bytes);
    let config = LoadConfig { addr, connections, pipeline, stop: Stop::Requests(u64::MAX), ..LoadConfig::default() };
    let connections = connections.max(1);
    let (recorder, elapsed) = run_sources(
        &config,
        |index| FillSource {
            generator: Generator::new(workload.clone(), index),
            rooms: (first + index as i64..=first + rooms - 1).step_by(connections),
            members,
            current: None,
        },
        progress,
    )
    .await;
    // Let the allocator settle before reading RSS.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = server_pid.and_then(rss_bytes);
    let memberships = (rooms.max(0) as u64) * members as u64;
    let report = recorder.report("fill", elapsed, connections, pipeline);
    FillReport {
        rooms,
        members,
        quests: recorder.answered(),
        elapsed_secs: elapsed.as_secs_f64(),
        memberships_per_sec: memberships as f64 / elapsed.as_secs_f64().max(1e-9),
        rss_before,
        rss_after,
        bytes_per_membership: match (rss_before, rss_after) {
            (Some(b), Some(a)) if memberships > 0 => Some((a as f64 - b as f64) / memberships as f64),
            _ => None,
        },
        errors: report.errors,
    }
}

/// What `connections` did.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsReport {
    /// Connections asked for.
    pub requested: usize,
    /// Connections opened and answering.
    pub opened: usize,
    /// Seconds to open them all.
    pub connect_secs: f64,
    /// Connections opened per second.
    pub connect_rate: f64,
    /// Server RSS before, bytes.
    pub rss_before: Option<u64>,
    /// Server RSS with every connection open, bytes.
    pub rss_after: Option<u64>,
    /// RSS growth per connection, bytes.
    pub bytes_per_connection: Option<f64>,
}

/// A held connection: plain FPNN, or FPNN over WebSocket. Only held open
/// (dropping it closes the connection), never read.
#[allow(dead_code)]
enum Held {
    Tcp(TcpStream),
    WebSocket(Box<tokio_tungstenite::WebSocketStream<TcpStream>>),
}

/// Opens `count` connections (each answers one `*ping`), holds them for
/// `hold`, then closes them. With `websocket`, `addr` is a client gate's
/// WebSocket endpoint and each connection upgrades at `/service/websocket`
/// first (the gate answers the `*ping` with "log in first", which is
/// answer enough: the session is up).
pub async fn hold_connections(
    addr: SocketAddr,
    count: usize,
    hold: Duration,
    server_pid: Option<u32>,
    websocket: bool,
) -> ConnectionsReport {
    let rss_before = server_pid.and_then(rss_bytes);
    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let permit = limit.clone().acquire_owned().await.expect("the semaphore stays open");
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            match websocket {
                true => open_websocket_and_ping(addr).await.map(|ws| Held::WebSocket(Box::new(ws))),
                false => open_and_ping(addr).await.map(Held::Tcp),
            }
        }));
    }
    let mut open = Vec::with_capacity(count);
    for task in tasks {
        if let Ok(Some(stream)) = task.await {
            open.push(stream);
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = server_pid.and_then(rss_bytes);
    tokio::time::sleep(hold).await;
    let opened = open.len();
    drop(open);
    ConnectionsReport {
        requested: count,
        opened,
        connect_secs,
        connect_rate: opened as f64 / connect_secs.max(1e-9),
        rss_before,
        rss_after,
        bytes_per_connection: match (rss_before, rss_after) {
            (Some(b), Some(a)) if opened > 0 => Some((a as f64 - b as f64) / opened as f64),
            _ => None,
        },
    }
}

async fn open_websocket_and_ping(addr: SocketAddr) -> Option<tokio_tungstenite::WebSocketStream<TcpStream>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let tcp = TcpStream::connect(addr).await.ok()?;
    let url = format!("ws://{addr}/service/websocket");
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.ok()?;
    let mut out = BytesMut::new();
    write_quest(&mut out, Encoding::MsgPack, Some(1), Ping::NAME, &Ping {}).ok()?;
    ws.send(Message::Binary(out.freeze())).await.ok()?;
    let mut buf = BytesMut::with_capacity(64);
    loop {
        if let Ok(Some(Frame::Answer(_))) = Frame::decode(&mut buf, 1 << 16) {
            return Some(ws);
        }
        match ws.next().await? {
            Ok(Message::Binary(bytes)) => buf.extend_from_slice(&bytes),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

async fn open_and_ping(addr: SocketAddr) -> Option<TcpStream> {
    let stream = TcpStream::connect(addr).await.ok()?;
    ping(stream).await
}

/// Sends `*ping` on `stream`; the stream back once answered.
async fn ping<T: AsyncRead + AsyncWrite + Unpin>(mut stream: T) -> Option<T> {
    let mut out = BytesMut::new();
    write_quest(&mut out, Encoding::MsgPack, Some(1), Ping::NAME, &Ping {}).ok()?;
    stream.write_all(&out).await.ok()?;
    stream.flush().await.ok()?;
    let mut buf = BytesMut::with_capacity(64);
    loop {
        if let Ok(Some(Frame::Answer(a))) = Frame::decode(&mut buf, 1 << 16) {
            return (a.status == 0).then_some(stream);
        }
        if stream.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    }
}

/// Checks the server answers: one `*ping` on a connection secured as the
/// load's will be, failing with a clear message.
pub async fn check_server(addr: SocketAddr, secure: &Secure) -> Result<(), String> {
    let check = async {
        match secure::open(addr, secure).await.map_err(|e| e.to_string())? {
            Opened::Plain(stream) => ping(stream).await.map(drop),
            Opened::Encrypted(stream) => ping(stream).await.map(drop),
            Opened::Tls(stream) => ping(stream).await.map(drop),
        }
        .ok_or_else(|| "no answer".to_string())
    };
    match tokio::time::timeout(Duration::from_secs(5), check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(format!("no FPNN server answering *ping at {addr} ({secure:?}): {why}")),
        Err(_) => Err(format!("no FPNN server answering *ping at {addr} ({secure:?}) within 5 s")),
    }
}

/// Pre-fills the room `getroommembers` reads with `size` members.
pub async fn prepare_members_room(addr: SocketAddr, workload: Arc<Workload>, size: usize) -> Recorder {
    let rid = workload.members_room();
    let config =
        LoadConfig { addr, connections: 1, pipeline: 16, stop: Stop::Requests(u64::MAX), ..LoadConfig::default() };
    let progress = Arc::new(AtomicU64::new(0));
    let (recorder, _) = run_sources(
        &config,
        |_| FillSource {
            generator: Generator::new(workload.clone(), 0),
            rooms: (rid..=rid).step_by(1),
            members: size,
            current: None,
        },
        progress,
    )
    .await;
    recorder
}

/// Starts a `mix` recording of each room `1..=rooms` (for `--record-rooms`),
/// idle for as long as the server allows so that rooms without members keep
/// recording. Returns the recordings' ids.
pub async fn start_recordings(addr: SocketAddr, workload: Arc<Workload>, rooms: i64) -> Result<Vec<String>, String> {
    use rtm_protocol::methods::{AcquireRecording, RecordingResource, RecordingStarted, StartRecording};
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let generator = Generator::new(workload, 0);
    let mut sids = Vec::new();
    let mut seq = 0;
    for rid in 1..=rooms {
        seq += 1;
        let resource: RecordingResource = call(&mut stream, &generator, seq, &AcquireRecording { rid }).await?;
        seq += 1;
        let start = StartRecording {
            resource_id: resource.resource_id,
            rid,
            mode: "mix".into(),
            max_idle_seconds: Some(2_592_000),
            ..StartRecording::default()
        };
        let started: RecordingStarted = call(&mut stream, &generator, seq, &start).await?;
        sids.push(started.sid);
    }
    Ok(sids)
}

/// One signed call on `stream`, its answer decoded.
async fn call<M: Method>(
    stream: &mut TcpStream,
    generator: &Generator,
    seq: u32,
    params: &M,
) -> Result<M::Answer, String> {
    let mut out = BytesMut::new();
    generator.signed(&mut out, seq, params);
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(256);
    loop {
        if let Some(Frame::Answer(answer)) = Frame::decode(&mut buf, 1 << 20).map_err(|e| e.to_string())? {
            if answer.status != 0 {
                let error: rtm_protocol::ErrorAnswer =
                    rtm_protocol::payload::decode(answer.encoding, &answer.payload).map_err(|e| e.to_string())?;
                return Err(format!("{}: {} {}", M::NAME, error.code, error.ex));
            }
            return rtm_protocol::payload::decode(answer.encoding, &answer.payload).map_err(|e| e.to_string());
        }
        if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err(format!("{}: the server closed the connection", M::NAME));
        }
    }
}
