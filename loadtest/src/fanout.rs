//! `fanout`: many logged-in clients in many rooms; a few of them send room
//! messages at a fixed total rate, and every client counts what it
//! receives.
//!
//! Tokens come from the server API (`gettoken`), then every client logs in
//! on the client gate and enters room `(uid - 1) % rooms + 1`. The first
//! `senders` clients send `sendroommsg` open-loop; each message carries the
//! harness's clock at its scheduled send time, so a receiver's latency is
//! send-to-receive, coordinated-omission included. Every delivery is
//! checked against what was sent: the report gives deliveries per second,
//! latency percentiles, and lost and duplicated deliveries (both must be 0),
//! and, with `--server-pid`, the server's memory per logged-in session.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rtm_protocol::client::{Auth, AuthAnswer, EnterRoom, MessageBody, PushRoomMsg, SendRoomMsg};
use rtm_protocol::methods::{Empty, GetToken, Method, ServerAuth, Signed, Token};
use rtm_protocol::{payload, write_answer, write_quest, Encoding, Frame, Quest, DEFAULT_MAX_FRAME_LEN};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::scenarios::rss_bytes;

mod redis_peer;

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutPlan {
    /// The server API, for tokens.
    pub server_addr: SocketAddr,
    /// The client gate.
    pub client_addr: SocketAddr,
    /// Where senders log in, if not `client_addr`: another node of a
    /// redis-engine deployment, to measure cross-node delivery.
    pub sender_addr: Option<SocketAddr>,
    pub pid: i64,
    pub secret: String,
    /// Logged-in clients; uids 1..=clients.
    pub clients: usize,
    /// Rooms the clients are spread over.
    pub rooms: usize,
    /// Clients that send (the first ones, so every room has one while senders >= rooms).
    pub senders: usize,
    /// Messages per second, all senders together.
    pub rate: f64,
    /// How long to send.
    pub duration: Duration,
    /// The server's process, to measure memory per session.
    pub server_pid: Option<u32>,
    /// `client_addr` is the client gate's WebSocket endpoint: clients speak
    /// FPNN over WebSocket, as browsers do.
    pub websocket: bool,
    /// Run the same fan-out on Redis pub/sub at this address instead (one
    /// channel per room), for a side-by-side figure.
    pub redis: Option<SocketAddr>,
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub clients: usize,
    pub rooms: usize,
    pub sent: u64,
    pub send_errors: u64,
    pub deliveries: u64,
    pub expected_deliveries: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub seconds: f64,
    pub deliveries_per_second: f64,
    pub latency_us: FanoutLatency,
    /// Server RSS growth per logged-in session, bytes (with `--server-pid`).
    pub bytes_per_session: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FanoutLatency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl FanoutReport {
    pub fn to_text(&self) -> String {
        let l = &self.latency_us;
        let memory =
            self.bytes_per_session.map_or(String::new(), |b| format!("\nserver memory per session: {:.0} bytes", b));
        format!(
            "fanout: {} clients in {} rooms, {} messages sent ({} refused) in {:.1} s\n\
             deliveries: {} ({:.0}/s), expected {}, lost {}, duplicated {}\n\
             send-to-receive latency: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms{memory}",
            self.clients,
            self.rooms,
            self.sent,
            self.send_errors,
            self.seconds,
            self.deliveries,
            self.deliveries_per_second,
            self.expected_deliveries,
            self.lost,
            self.duplicated,
            l.p50 as f64 / 1000.0,
            l.p99 as f64 / 1000.0,
            l.p999 as f64 / 1000.0,
            l.max as f64 / 1000.0,
        )
    }
}

/// One client's count of what it received.
struct Received {
    latency: Histogram<u64>,
    seen: HashSet<(i64, i64)>,
    duplicated: u64,
    sent: Vec<(i64, i64)>,
    send_errors: u64,
}

impl Received {
    fn new() -> Self {
        Self {
            latency: Histogram::new(3).expect("a valid histogram"),
            seen: HashSet::new(),
            duplicated: 0,
            sent: Vec::new(),
            send_errors: 0,
        }
    }
}

fn room_of(uid: i64, rooms: usize) -> i64 {
    (uid - 1) % rooms as i64 + 1
}

/// Client `i`'s sending, if it is a sender: its room, when in the first
/// interval it sends (the senders spread over it) and the interval.
fn sends(plan: &FanoutPlan, i: usize) -> Option<(i64, Duration, Duration)> {
    let interval = Duration::from_secs_f64(plan.senders.max(1) as f64 / plan.rate.max(1e-9));
    (i < plan.senders).then(|| {
        let phase = interval.mul_f64(i as f64 / plan.senders.max(1) as f64);
        (room_of(i as i64 + 1, plan.rooms), phase, interval)
    })
}

/// Runs the plan.
pub async fn run(plan: FanoutPlan) -> Result<FanoutReport, String> {
    if let Some(redis) = plan.redis {
        return redis_peer::run(plan, redis).await;
    }
    let tokens = tokens(&plan).await?;
    let rss_before = plan.server_pid.and_then(rss_bytes);
    // Log everyone in, a few hundred at a time.
    let connecting = Arc::new(Semaphore::new(256));
    let mut logins = Vec::with_capacity(plan.clients);
    for (i, token) in tokens.into_iter().enumerate() {
        let (uid, permit, plan) = (i as i64 + 1, connecting.clone(), plan.clone());
        logins.push(tokio::spawn(async move {
            let _permit = permit.acquire_owned().await;
            login(&plan, uid, token).await
        }));
    }
    let mut clients = Vec::with_capacity(plan.clients);
    for login in logins {
        clients.push(login.await.map_err(|e| e.to_string())??);
    }
    let bytes_per_session = match (rss_before, plan.server_pid.and_then(rss_bytes)) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) as f64 / plan.clients as f64),
        _ => None,
    };
    let epoch = Instant::now();
    let mut tasks = Vec::with_capacity(clients.len());
    for (i, client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(drive(client, sends(&plan, i), epoch, plan.duration)));
    }
    // Each sent message reaches every other member of its room.
    report(&plan, tasks, true, bytes_per_session).await
}

/// Collects the clients' counts into the report. A message is expected
/// once per receiving member of its room but its sender; the senders (the
/// first `plan.senders` uids) are members who receive unless
/// `senders_receive` is false (Redis pub/sub, where they only publish).
async fn report(
    plan: &FanoutPlan,
    tasks: Vec<tokio::task::JoinHandle<Received>>,
    senders_receive: bool,
    bytes_per_session: Option<f64>,
) -> Result<FanoutReport, String> {
    let mut total = Received::new();
    let mut deliveries = 0u64;
    for task in tasks {
        let received = task.await.map_err(|e| e.to_string())?;
        total.latency.add(&received.latency).map_err(|e| e.to_string())?;
        total.duplicated += received.duplicated;
        total.sent.extend_from_slice(&received.sent);
        total.send_errors += received.send_errors;
        deliveries += received.seen.len() as u64;
    }
    let seconds = plan.duration.as_secs_f64();
    let first_receiver = if senders_receive { 1 } else { plan.senders as i64 + 1 };
    let mut receiving: HashMap<i64, u64> = HashMap::new();
    for uid in first_receiver..=plan.clients as i64 {
        *receiving.entry(room_of(uid, plan.rooms)).or_default() += 1;
    }
    let itself = u64::from(senders_receive);
    let expected: u64 =
        total.sent.iter().map(|(rid, _)| receiving.get(rid).copied().unwrap_or(0).saturating_sub(itself)).sum();
    let l = &total.latency;
    Ok(FanoutReport {
        clients: plan.clients,
        rooms: plan.rooms,
        sent: total.sent.len() as u64,
        send_errors: total.send_errors,
        deliveries,
        expected_deliveries: expected,
        lost: expected.saturating_sub(deliveries),
        duplicated: total.duplicated,
        seconds,
        deliveries_per_second: deliveries as f64 / seconds,
        latency_us: FanoutLatency {
            p50: l.value_at_quantile(0.5),
            p99: l.value_at_quantile(0.99),
            p999: l.value_at_quantile(0.999),
            max: l.max(),
        },
        bytes_per_session,
    })
}

/// A token for every uid, pipelined on one server-API connection.
async fn tokens(plan: &FanoutPlan) -> Result<Vec<String>, String> {
    let mut stream = TcpStream::connect(plan.server_addr).await.map_err(|e| format!("server API: {e}"))?;
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let salt0 = ts as i64 * 1_000_000 + i64::from(std::process::id());
    let mut tokens = vec![String::new(); plan.clients];
    let mut rbuf = BytesMut::new();
    for chunk in (0..plan.clients).collect::<Vec<_>>().chunks(500) {
        let mut out = BytesMut::new();
        for &i in chunk {
            let auth = ServerAuth::new(plan.pid, &plan.secret, salt0 + i as i64, GetToken::NAME, ts as i64);
            let params = GetToken { uid: i as i64 + 1, version: None };
            write_quest(
                &mut out,
                Encoding::MsgPack,
                Some(i as u32 + 1),
                GetToken::NAME,
                &Signed { auth: &auth, params: &params },
            )
            .map_err(|e| e.to_string())?;
        }
        stream.write_all(&out).await.map_err(|e| e.to_string())?;
        for _ in chunk {
            let answer = loop {
                if let Some(Frame::Answer(answer)) =
                    Frame::decode(&mut rbuf, DEFAULT_MAX_FRAME_LEN).map_err(|e| e.to_string())?
                {
                    break answer;
                }
                if stream.read_buf(&mut rbuf).await.map_err(|e| e.to_string())? == 0 {
                    return Err("the server API closed the connection".into());
                }
            };
            if answer.status != 0 {
                return Err(format!("gettoken failed: {}", String::from_utf8_lossy(&answer.payload)));
            }
            let token: Token = payload::decode(answer.encoding, &answer.payload).map_err(|e| e.to_string())?;
            tokens[answer.seq as usize - 1] = token.token;
        }
    }
    Ok(tokens)
}

struct Client {
    uid: i64,
    stream: Conn,
    rbuf: BytesMut,
}

/// A client's connection: FPNN frames over TCP, or in binary WebSocket
/// messages (read back as one byte stream).
enum Conn {
    Tcp(TcpStream),
    WebSocket(Box<tokio_tungstenite::WebSocketStream<TcpStream>>),
}

impl Conn {
    async fn open(addr: SocketAddr, websocket: bool) -> Result<Self, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("client gate: {e}"))?;
        let _ = tcp.set_nodelay(true);
        if !websocket {
            return Ok(Self::Tcp(tcp));
        }
        let url = format!("ws://{addr}/service/websocket");
        let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.map_err(|e| format!("WebSocket: {e}"))?;
        Ok(Self::WebSocket(Box::new(ws)))
    }

    /// Sends frames (one binary message over WebSocket).
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Tcp(tcp) => tcp.write_all(bytes).await,
            Self::WebSocket(ws) => {
                let message = tokio_tungstenite::tungstenite::Message::Binary(bytes::Bytes::copy_from_slice(bytes));
                ws.send(message).await.map_err(std::io::Error::other)
            }
        }
    }

    /// Reads what comes next into `buf`; 0 once the server closed.
    async fn recv(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        use tokio_tungstenite::tungstenite::Message;
        match self {
            Self::Tcp(tcp) => {
                // Room to read a batch of pushes in one call: an empty (or
                // full) BytesMut makes read_buf take 64 bytes a system call,
                // which capped the TCP clients at about 285,000 deliveries/s
                // on one core, all of it in the kernel.
                if buf.capacity() - buf.len() < 16 * 1024 {
                    buf.reserve(64 * 1024);
                }
                tcp.read_buf(buf).await
            }
            Self::WebSocket(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(bytes))) => {
                        buf.extend_from_slice(&bytes);
                        let mut read = bytes.len();
                        // Take what else is already here, as one TCP read would:
                        // one wake-up of this client per batch, not per push.
                        while let Some(Some(Ok(Message::Binary(more)))) = ws.next().now_or_never() {
                            buf.extend_from_slice(&more);
                            read += more.len();
                        }
                        return Ok(read);
                    }
                    Some(Ok(Message::Close(_))) | None => return Ok(0),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(std::io::Error::other(e)),
                }
            },
        }
    }
}

async fn call<M: Method>(client: &mut Client, seq: u32, params: &M) -> Result<M::Answer, String> {
    let mut out = BytesMut::new();
    write_quest(&mut out, Encoding::MsgPack, Some(seq), M::NAME, params).map_err(|e| e.to_string())?;
    client.stream.send(&out).await.map_err(|e| e.to_string())?;
    loop {
        match Frame::decode(&mut client.rbuf, DEFAULT_MAX_FRAME_LEN).map_err(|e| e.to_string())? {
            Some(Frame::Answer(answer)) if answer.seq == seq => {
                if answer.status != 0 {
                    return Err(format!("{} failed: {}", M::NAME, String::from_utf8_lossy(&answer.payload)));
                }
                return payload::decode(answer.encoding, &answer.payload).map_err(|e| e.to_string());
            }
            Some(_) => {} // pings and pushes before the run starts
            None => {
                if client.stream.recv(&mut client.rbuf).await.map_err(|e| e.to_string())? == 0 {
                    return Err("the client gate closed the connection".into());
                }
            }
        }
    }
}

async fn login(plan: &FanoutPlan, uid: i64, token: String) -> Result<Client, String> {
    let addr = match plan.sender_addr {
        Some(addr) if (uid as usize) <= plan.senders => addr,
        _ => plan.client_addr,
    };
    let stream = Conn::open(addr, plan.websocket).await?;
    let mut client = Client { uid, stream, rbuf: BytesMut::new() };
    let auth =
        Auth { pid: plan.pid, uid, token, version: Some("rtm-loadtest".into()), lang: None, attrs: None, device: None };
    let answer: AuthAnswer = call(&mut client, 1, &auth).await?;
    if !answer.ok {
        return Err(format!("user {uid}: the token was refused"));
    }
    call::<EnterRoom>(&mut client, 2, &EnterRoom { rid: room_of(uid, plan.rooms) }).await?;
    Ok(client)
}

/// Reads (and answers) what the gate sends; sends on a schedule if a sender.
async fn drive(
    mut client: Client,
    sends: Option<(i64, Duration, Duration)>,
    epoch: Instant,
    duration: Duration,
) -> Received {
    let mut received = Received::new();
    let stop_sending = epoch + duration;
    // Messages still in flight get a moment to arrive.
    let stop_reading = stop_sending + Duration::from_secs(2);
    let mut next_send = sends.map(|(_, phase, _)| epoch + phase);
    // Unique across runs too: a repeated (from, rid, mid) with the same
    // content is a retry, which the server answers without delivering.
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let mut mid = (run << 16) + client.uid * 1_000_000;
    let mut pending: HashMap<u32, (i64, i64)> = HashMap::new();
    let mut seq = 10u32;
    let mut out = BytesMut::new();
    loop {
        let wake = match next_send {
            Some(at) if at < stop_sending => at,
            _ => stop_reading,
        };
        tokio::select! {
            read = client.stream.recv(&mut client.rbuf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= stop_reading {
                    break;
                }
                if let (Some((rid, _, interval)), Some(at)) = (sends, next_send) {
                    // The message carries its scheduled time: a late send is the server's delay too.
                    let scheduled = at.duration_since(epoch).as_nanos() as u64;
                    mid += 1;
                    seq = seq.wrapping_add(1);
                    let message = SendRoomMsg {
                        rid,
                        mid,
                        mtype: 51,
                        msg: MessageBody::Text(scheduled.to_string()),
                        attrs: String::new(),
                        strategyid: None,
                        check_params: None,
                    };
                    let _ = write_quest(&mut out, Encoding::MsgPack, Some(seq), SendRoomMsg::NAME, &message);
                    pending.insert(seq, (rid, mid));
                    next_send = Some(at + interval);
                }
            }
        }
        while let Ok(Some(frame)) = Frame::decode(&mut client.rbuf, DEFAULT_MAX_FRAME_LEN) {
            match frame {
                Frame::Answer(answer) => {
                    if let Some(sent) = pending.remove(&answer.seq) {
                        match answer.status {
                            0 => received.sent.push(sent),
                            _ => received.send_errors += 1,
                        }
                    }
                }
                Frame::Quest(quest) => take_push(&quest, epoch, &mut received, &mut out),
            }
        }
        if !out.is_empty() {
            if client.stream.send(&out).await.is_err() {
                break;
            }
            out.clear();
        }
    }
    received
}

fn take_push(quest: &Quest, epoch: Instant, received: &mut Received, out: &mut BytesMut) {
    if let Some(seq) = quest.seq {
        let _ = write_answer(out, quest.version, quest.encoding, seq, 0, &Empty {});
    }
    if &quest.method[..] != PushRoomMsg::NAME.as_bytes() {
        return;
    }
    let Ok(push) = payload::decode::<PushRoomMsg>(quest.encoding, &quest.payload) else { return };
    if !received.seen.insert((push.from, push.mid)) {
        received.duplicated += 1;
        return;
    }
    if let MessageBody::Text(text) = &push.msg {
        if let Ok(scheduled) = text.parse::<u64>() {
            let now = epoch.elapsed().as_nanos() as u64;
            let _ = received.latency.record((now.saturating_sub(scheduled) / 1000).max(1));
        }
    }
}
