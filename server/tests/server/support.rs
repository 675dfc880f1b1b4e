//! Starts the real server on 127.0.0.1:0 and talks raw FPNN to it.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use rtm_protocol::methods::{Method, ServerAuth, Signed};
use rtm_protocol::{payload, write_quest, Answer, Encoding, ErrorAnswer, Frame, DEFAULT_MAX_FRAME_LEN};
use rtm_server::config::ProjectConfig;
use rtm_server::Config;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PID: i64 = 1000;
pub const SECRET: &str = "secret-of-1000";
pub const OTHER_PID: i64 = 2000;
pub const OTHER_SECRET: &str = "secret-of-2000";

/// How long a test waits for any one answer before failing.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

pub fn test_config() -> Config {
    let mut config = Config {
        projects: vec![ProjectConfig::new(PID, SECRET), ProjectConfig::new(OTHER_PID, OTHER_SECRET)],
        ..Config::default()
    };
    // Tests that want the metrics listener bind it themselves on port 0.
    config.metrics.listen.clear();
    // In memory only, unless a test asks for a data directory.
    config.storage.data_dir.clear();
    // `RTM_TEST_ENGINE=redis` runs the same tests on the redis engine.
    if std::env::var("RTM_TEST_ENGINE").as_deref() == Ok("redis") {
        use_redis(&mut config, &fresh_namespace());
    }
    config
}

/// The Redis Cluster the redis-engine tests use: `RTM_TEST_REDIS` (a seed
/// node), else the local cluster of `scripts/redis-cluster.sh`, started if
/// it is not running.
pub fn redis_seed() -> String {
    static SEED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SEED.get_or_init(|| {
        if let Ok(seed) = std::env::var("RTM_TEST_REDIS") {
            return seed;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/redis-cluster.sh");
        let status =
            std::process::Command::new("bash").arg(script).arg("start").status().expect("run redis-cluster.sh");
        assert!(status.success(), "scripts/redis-cluster.sh start failed (is redis-server installed?)");
        "127.0.0.1:17001".into()
    })
    .clone()
}

/// A namespace no other test server uses: tests share one cluster.
pub fn fresh_namespace() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("t{}-{nanos}-{n}", std::process::id())
}

/// A server that restarts on the data it had: its data directory and, on
/// the redis engine, one cluster namespace for every start (each start a
/// node of the same deployment). `adjust()` for each start.
pub struct Restartable {
    data_dir: String,
    namespace: String,
}

impl Restartable {
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self { data_dir: data_dir.display().to_string(), namespace: fresh_namespace() }
    }

    pub fn adjust(&self) -> impl FnOnce(&mut Config) + use<> {
        let (data_dir, namespace) = (self.data_dir.clone(), self.namespace.clone());
        move |c: &mut Config| {
            c.storage.data_dir = data_dir;
            c.engine.redis_namespace = namespace;
        }
    }
}

/// Puts `config` on the redis engine, in key namespace `namespace`.
pub fn use_redis(config: &mut Config, namespace: &str) {
    config.engine.kind = rtm_server::config::EngineKind::Redis;
    config.engine.redis_nodes = vec![redis_seed()];
    config.engine.redis_namespace = namespace.to_owned();
}

pub struct TestServer {
    /// The server API (server gate).
    pub addr: SocketAddr,
    /// The client gate.
    pub client_addr: SocketAddr,
    /// The client gate's WebSocket endpoint (`ws://{ws_addr}/service/websocket`).
    pub ws_addr: SocketAddr,
    /// Its `wss://` endpoint, with `start_full(.., tls = true)`.
    pub wss_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    /// The recording HTTP API.
    pub recording_api_addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), rtm_server::ServerError>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_full(adjust, false, false).await
    }

    /// Starts a server, optionally with the admin (metrics) and TLS
    /// listeners on ports of their own; `adjust` must set the TLS paths.
    #[allow(clippy::unused_async)]
    pub async fn start_full(adjust: impl FnOnce(&mut Config), admin: bool, tls: bool) -> Self {
        // `RTM_TEST_LOG=rtm_server=debug` shows the servers' logs (with --nocapture).
        if let Ok(filter) = std::env::var("RTM_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        let mut config = test_config();
        adjust(&mut config);
        let any = || rtm_server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (plain, secure) = (any(), tls.then(any));
        let addr = plain.local_addr().unwrap();
        let tls_addr = secure.as_ref().map(|l| l.local_addr().unwrap());
        let mut server = vec![(plain, false)];
        server.extend(secure.map(|l| (l, true)));
        let client_gate = any();
        let client_addr = client_gate.local_addr().unwrap();
        let websocket = any();
        let ws_addr = websocket.local_addr().unwrap();
        let secure_websocket = tls.then(any);
        let wss_addr = secure_websocket.as_ref().map(|l| l.local_addr().unwrap());
        let mut websockets = vec![(websocket, false)];
        websockets.extend(secure_websocket.map(|l| (l, true)));
        let listeners = rtm_server::Listeners {
            server,
            client: vec![(client_gate, false)],
            websocket: websockets,
            admin: admin.then(any),
            recording_api: Some(any()),
        };
        let admin_addr = listeners.admin.as_ref().map(|l| l.local_addr().unwrap());
        let recording_api_addr = listeners.recording_api.as_ref().unwrap().local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(rtm_server::serve(listeners, config, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            client_addr,
            ws_addr,
            wss_addr,
            admin_addr,
            tls_addr,
            recording_api_addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Fails the test with the server's error if it has stopped by itself
    /// (a start-up failure shows as connections closed without answers).
    pub async fn assert_running(&mut self) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if self.task.as_ref().is_some_and(|t| t.is_finished()) {
            let result = self.task.take().unwrap().await.unwrap();
            panic!("the server stopped by itself: {result:?}");
        }
    }

    /// The error a server that cannot start stops with (10 s at most).
    pub async fn start_failure(mut self) -> String {
        let task = self.task.take().unwrap();
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(result) => format!("{:?}", result.unwrap().expect_err("the server was expected not to start")),
            Err(_) => panic!("the server still runs"),
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr, PID, SECRET).await
    }

    pub async fn client_for(&self, pid: i64, secret: &str) -> Client {
        Client::connect(self.addr, pid, secret).await
    }

    /// `GET path` on the admin listener: `(status, body)`.
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin_addr.expect("started with the admin listener"), path).await
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Shuts down and waits for `run` to return.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(15), task).await.expect("run returns").unwrap().unwrap();
    }
}

/// Sends `quests` signed quests on a connection that never reads its
/// answers, so the server ends up blocked writing to it. Returns the
/// connection's halves; keep them alive as long as the stall should last.
pub async fn stall_with_unread_answers(
    client: Client,
    quests: i64,
) -> (tokio::net::tcp::OwnedReadHalf, JoinHandle<tokio::net::tcp::OwnedWriteHalf>) {
    let mut client = client;
    let mut out = BytesMut::new();
    for uid in 0..quests {
        client.encode_signed(&mut out, &rtm_protocol::methods::AddRoomMember { rid: 1, uid });
    }
    let (reader, mut writer) = client.stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = writer.write_all(&out).await;
        writer
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    (reader, writer)
}

/// A minimal HTTP/1.1 GET: `(status, body)`.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(ANSWER_TIMEOUT, stream.read_to_end(&mut response)).await.unwrap().unwrap();
    let text = String::from_utf8(response).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Parses Prometheus exposition text into `series -> value`, where a series
/// is written as in the text, e.g. `rtm_quests_total{code="0",method="ping"}`.
pub fn parse_exposition(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A raw FPNN client: signs like the RTM SDKs, and can also send anything.
pub struct Client {
    pub stream: TcpStream,
    rbuf: BytesMut,
    seq: u32,
    salt: i64,
    pub pid: i64,
    pub secret: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr, pid: i64, secret: &str) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self { pid, secret: secret.into(), ..Self::from_stream(stream) }
    }

    /// A client for the test project over an existing stream.
    pub fn from_stream(stream: TcpStream) -> Self {
        stream.set_nodelay(true).unwrap();
        // Each client gets its own range of salts, so that two clients never sign alike.
        static CLIENTS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let salt = now_secs() * 1000 + CLIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * 1_000_000_000_000;
        Self { stream, rbuf: BytesMut::new(), seq: 0, salt, pid: PID, secret: SECRET.into() }
    }

    pub fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    /// Authentication keys for one quest, with a fresh salt.
    pub fn auth(&mut self, method: &str) -> ServerAuth {
        self.salt += 1;
        ServerAuth::new(self.pid, &self.secret, self.salt, method, now_secs())
    }

    /// Encodes a signed twoway quest; returns its seq.
    pub fn encode_signed<M: Method>(&mut self, out: &mut BytesMut, params: &M) -> u32 {
        let auth = self.auth(M::NAME);
        self.encode_raw(out, Encoding::MsgPack, M::NAME, &Signed { auth: &auth, params })
    }

    /// Encodes any twoway quest; returns its seq.
    pub fn encode_raw<T: Serialize + ?Sized>(
        &mut self,
        out: &mut BytesMut,
        encoding: Encoding,
        method: &str,
        payload: &T,
    ) -> u32 {
        let seq = self.next_seq();
        write_quest(out, encoding, Some(seq), method, payload).unwrap();
        seq
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Calls a method and decodes its answer.
    pub async fn call<M: Method>(&mut self, params: &M) -> Result<M::Answer, ErrorAnswer> {
        let mut out = BytesMut::new();
        let seq = self.encode_signed(&mut out, params);
        self.send(&out).await;
        let answer = self.read_answer().await;
        assert_eq!(answer.seq, seq, "answers come back in order");
        decode_answer::<M::Answer>(&answer)
    }

    /// Sends any payload as a twoway msgpack quest and returns the answer.
    pub async fn call_raw<T: Serialize + ?Sized>(&mut self, method: &str, payload: &T) -> Answer {
        let mut out = BytesMut::new();
        let seq = self.encode_raw(&mut out, Encoding::MsgPack, method, payload);
        self.send(&out).await;
        let answer = self.read_answer().await;
        assert_eq!(answer.seq, seq);
        answer
    }

    /// Reads the next frame, which must be an answer.
    pub async fn read_answer(&mut self) -> Answer {
        match self.read_frame().await {
            Some(Frame::Answer(answer)) => answer,
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    /// Reads the next frame; `None` if the server closed the connection.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        read_frame(&mut self.stream, &mut self.rbuf).await
    }

    /// Asserts the server closes the connection without sending anything more.
    pub async fn expect_closed(&mut self) {
        let frame = self.read_frame().await;
        assert!(frame.is_none(), "expected the connection to close, got {frame:?}");
    }
}

/// Decodes an answer: the typed payload, or the `{code, ex}` of an error.
pub fn decode_answer<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<T, ErrorAnswer> {
    if answer.status != 0 {
        return Err(
            payload::decode::<ErrorAnswer>(answer.encoding, &answer.payload).expect("error answers are {code, ex}")
        );
    }
    Ok(payload::decode::<T>(answer.encoding, &answer.payload).expect("the answer decodes"))
}

/// The error code of an answer that must be an error.
pub fn error_code(answer: &Answer) -> i64 {
    decode_answer::<serde::de::IgnoredAny>(answer).map(|_| ()).expect_err("expected an error answer").code
}

/// Reads the next frame from `stream`, buffering partial ones in `rbuf`;
/// `None` if the server closed the connection.
pub async fn read_frame(stream: &mut TcpStream, rbuf: &mut BytesMut) -> Option<Frame> {
    tokio::time::timeout(ANSWER_TIMEOUT, async {
        loop {
            if let Some(frame) = Frame::decode(rbuf, DEFAULT_MAX_FRAME_LEN).unwrap() {
                return Some(frame);
            }
            match stream.read_buf(rbuf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server sent something in time")
}
