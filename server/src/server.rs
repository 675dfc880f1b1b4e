//! The accept loops and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::app::App;
use crate::auth::Tokens;
use crate::clock;
use crate::cluster::feed::Feed;
use crate::cluster::{Cluster, ClusterOptions, RedisTls};
use crate::config::Config;
use crate::config::GateConfig;
use crate::config::{EngineConfig, EngineKind};
use crate::engine::{Engine, Remote};
use crate::error::ServerError;
use crate::gate::{ClientGate, ServerGate};
use crate::history::{self, History};
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::recording::{Recordings, Runner as RecordingRunner};
use crate::session::encrypted::{self, GateKey};
use crate::session::pump::{self, Limits, Stop};
use crate::session::{Accepted, Gate};
use crate::state::State;
use crate::storage::{self, StorageSettings};
use crate::tls::TlsState;
use crate::web;

/// Binds a listening socket with a deep accept backlog and `SO_REUSEADDR`,
/// so a restarted server can bind at once.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// The sockets a server listens on.
pub struct Listeners {
    /// The server gate's endpoints, each with whether it speaks TLS (which
    /// needs `tls.cert_path` and `tls.key_path`).
    pub server: Vec<(TcpListener, bool)>,
    /// The client gate's endpoints, likewise.
    pub client: Vec<(TcpListener, bool)>,
    /// The client gate's WebSocket endpoints (`ws://`, or `wss://` when
    /// `true`).
    pub websocket: Vec<(TcpListener, bool)>,
    /// HTTP `/metrics`, `/healthz`, `/readyz`.
    pub admin: Option<TcpListener>,
    /// The recording HTTP API (`recording.http_listen`).
    pub recording_api: Option<TcpListener>,
}

/// Serves the server gate on `listener` (its first endpoint,
/// `gates.server.listeners[0]`, bound by the caller) and on its other endpoints, plus the metrics listener the
/// config names, until `shutdown` completes; then drains.
///
/// On shutdown the listeners close at once and `/readyz` turns 503; every
/// connection answers the quests it has already read (later ones get 20014
/// "server stopping") and closes. Connections still open after
/// `server.drain_timeout_secs` are cut.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    config.validate()?;
    let endpoints = &config.gates.server.listeners;
    let mut server = vec![(listener, endpoints[0].tls)];
    for endpoint in &endpoints[1..] {
        let bound = bind(endpoint.addr).map_err(|e| ServerError::Bind {
            what: "gates.server.listeners",
            addr: endpoint.addr,
            source: e,
        })?;
        server.push((bound, endpoint.tls));
    }
    let mut client = Vec::new();
    for endpoint in &config.gates.client.listeners {
        let bound = bind(endpoint.addr).map_err(|e| ServerError::Bind {
            what: "gates.client.listeners",
            addr: endpoint.addr,
            source: e,
        })?;
        client.push((bound, endpoint.tls));
    }
    let mut websocket = Vec::new();
    for endpoint in &config.gates.client.websocket_listeners {
        let bound = bind(endpoint.addr).map_err(|e| ServerError::Bind {
            what: "gates.client.websocket_listeners",
            addr: endpoint.addr,
            source: e,
        })?;
        websocket.push((bound, endpoint.tls));
    }
    let admin = match config.metrics.addr()? {
        Some(addr) => Some(bind(addr).map_err(|e| ServerError::Bind { what: "metrics.listen", addr, source: e })?),
        None => None,
    };
    let recording_api = match config.recording.http_addr()? {
        Some(addr) => {
            Some(bind(addr).map_err(|e| ServerError::Bind { what: "recording.http_listen", addr, source: e })?)
        }
        None => None,
    };
    serve(Listeners { server, client, websocket, admin, recording_api }, config, shutdown).await
}

/// Like [`run`], with every listener bound by the caller (tests bind them on
/// port 0).
pub async fn serve(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.validate()?;
    for warning in &config.deprecations {
        warn!("{warning}");
    }
    let tls = match listeners.server.iter().chain(&listeners.client).chain(&listeners.websocket).any(|(_, tls)| *tls) {
        true => Some(Arc::new(TlsState::load(&config.tls)?)),
        false => None,
    };
    let drain_timeout = config.server.drain_timeout();
    let metrics = match listeners.admin {
        // Quests are counted by method: the server API's by name, the client gate's as `client.<name>`.
        Some(_) => Metrics::new(&ServerGate::method_names().chain(ClientGate::method_names()).collect::<Vec<_>>()),
        None => Metrics::off(),
    };
    let presence = Arc::new(Presence::new(config.sessions.multi_login, config.limits.client_messages_per_second));
    let engine = Engine::new(State::default(), Arc::default(), presence);
    // The redis engine's followers run until the connections are drained.
    let engine_stop = CancellationToken::new();
    let engine_tasks = TaskTracker::new();
    if config.engine.kind == EngineKind::Redis {
        // History lives in Redis too (the rooms' streams), under the same rules.
        let history = config.history.enabled.then(|| history::RetentionRules::new(&config.history, &config.projects));
        connect_redis(&config.engine, history, &engine, &engine_tasks, &engine_stop).await?;
    } else if let Some(dir) = config.storage.dir() {
        let settings = StorageSettings {
            dir,
            policy: config.storage.fsync,
            snapshot_after_bytes: config.storage.snapshot_after_bytes,
            repair: config.storage.repair,
        };
        let errors = metrics.storage_write_errors();
        // Start-up work: nothing else runs yet, so blocking here is fine.
        let log = storage::open(&settings, engine.persisted(), errors)?;
        engine.attach_log(log);
    }
    if config.history.enabled && config.engine.kind != EngineKind::Redis {
        let location = match config.storage.dir() {
            Some(dir) => history::Location::Dir(dir, config.storage.fsync),
            None => history::Location::Temporary,
        };
        let store = History::open(location, &config.history, &config.projects)
            .map_err(|e| ServerError::History(e.to_string()))?;
        engine.attach_history(store);
    }
    // The hold starts once recovery is done: the releases it covers come after.
    engine.events().configure((config.events.startup_hold_secs as i64).saturating_mul(1000), clock::now_ms());
    let tokens = Arc::new(Tokens::new(&config));
    let recording_root = match (config.recording.dir.as_str(), config.storage.dir()) {
        ("", Some(dir)) => dir.join("recordings"),
        // Without a data dir the files still outlive the process: they are what was asked for.
        ("", None) => std::env::temp_dir().join(format!("rtm-recordings-{}", std::process::id())),
        (dir, _) => std::path::PathBuf::from(dir),
    };
    let mut recordings =
        Recordings::open(config.recording.clone(), recording_root, engine.keeps_history(), &config.projects)
            .map_err(|e| ServerError::Recording(e.to_string()))?;
    if let Some(remote) = engine.remote() {
        recordings.share_through(remote.clone());
    }
    let shared = Arc::new(App { engine, metrics, tokens, recordings, ready: AtomicBool::new(true), config });
    let recording_runner = RecordingRunner::start(shared.clone()).map_err(|e| ServerError::Recording(e.to_string()))?;
    let stop = Stop { drain: CancellationToken::new(), abort: CancellationToken::new() };
    let tracker = TaskTracker::new();
    shared.engine.spawn_background(&tracker, stop.drain.clone());
    // The admin listener outlives the drain, so /readyz can report it.
    if let Some(history) = shared.engine.history() {
        let every = Duration::from_secs(shared.config.history.sweep_interval_secs.max(1));
        tracker.spawn(history.clone().sweep_task(every, stop.drain.clone()));
    }
    let admin_stop = CancellationToken::new();
    // Uploads go on through the drain (recordings end in it) and stop last.
    let uploads = shared.recordings.uploads.clone().map(|u| tokio::spawn(u.run(admin_stop.clone())));
    let admin = listeners.admin.map(|l| tokio::spawn(crate::admin::serve(l, shared.clone(), admin_stop.clone())));
    let recording_api = listeners
        .recording_api
        .map(|l| tokio::spawn(crate::recording_api::serve(l, shared.clone(), stop.drain.clone())));
    if let Some(tls) = &tls {
        tracker.spawn(reload_on_sighup(tls.clone(), stop.drain.clone()));
    }

    let config = &shared.config;
    let server_gate = Arc::new(ServerGate::new(shared.clone()));
    tracker.spawn(sweep_replay_cache(server_gate.clone(), stop.drain.clone()));
    // Backends' outboxes are bounded by count (`events.listener_queue`).
    let server_limits = limits(&config.gates.server, (config.events.listener_queue, usize::MAX), None, None);
    let server_door = Arc::new(Door::new("server", server_gate, server_limits, &config.gates.server)?);
    let client_gate = Arc::new(ClientGate::new(shared.clone(), shared.tokens.clone(), stop.drain.clone()));
    let sessions = &config.sessions;
    let client_limits = limits(
        &config.gates.client,
        (sessions.outbox_len, sessions.outbox_bytes),
        Some(Duration::from_secs(sessions.ping_interval_secs)),
        Some(Duration::from_secs(sessions.auth_timeout_secs)),
    );
    let client_door = Arc::new(Door::new("client", client_gate, client_limits, &config.gates.client)?);
    // Accepting stops (and the listeners close) as soon as `shutdown` completes.
    let accepting = CancellationToken::new();
    let ids = Arc::new(AtomicU64::new(0));
    let mut accept_loops = Vec::new();
    let endpoint = |listener, secure: bool| Endpoint {
        listener,
        tls: secure.then(|| tls.clone()).flatten(),
        handshake_timeout: shared.config.tls.handshake_timeout(),
        websocket: None,
    };
    let per_ip = web::PerIp::new(shared.config.websocket.max_connections_per_ip);
    for (listener, secure) in listeners.server {
        let door = server_door.clone();
        let accept =
            accept_loop(endpoint(listener, secure), door, shared.clone(), stop.clone(), tracker.clone(), ids.clone());
        accept_loops.push(tokio::spawn(accept_until(accept, accepting.clone())));
    }
    for (listener, secure) in listeners.client {
        let door = client_door.clone();
        let accept =
            accept_loop(endpoint(listener, secure), door, shared.clone(), stop.clone(), tracker.clone(), ids.clone());
        accept_loops.push(tokio::spawn(accept_until(accept, accepting.clone())));
    }
    for (listener, secure) in listeners.websocket {
        let door = client_door.clone();
        let endpoint = Endpoint { websocket: Some(per_ip.clone()), ..endpoint(listener, secure) };
        let accept = accept_loop(endpoint, door, shared.clone(), stop.clone(), tracker.clone(), ids.clone());
        accept_loops.push(tokio::spawn(accept_until(accept, accepting.clone())));
    }
    shutdown.await;
    accepting.cancel();
    for accept in accept_loops {
        let _ = accept.await;
    }

    shared.ready.store(false, Ordering::Relaxed);
    shared.recordings.playbacks.shutdown();
    info!("shutting down: draining connections");
    stop.drain.cancel();
    tracker.close();
    if tokio::time::timeout(drain_timeout, tracker.wait()).await.is_err() {
        warn!(?drain_timeout, "drain timeout reached: closing the remaining connections");
        stop.abort.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
    }
    engine_stop.cancel();
    engine_tasks.close();
    engine_tasks.wait().await;
    if let Some(api) = recording_api {
        let _ = api.await;
    }
    // Its last pass writes what history holds now; running recordings resume at the next start.
    let _ = tokio::task::spawn_blocking(move || recording_runner.stop()).await;
    if let Some(log) = shared.engine.log().cloned() {
        // Everything appended is written and synced before we return.
        let _ = tokio::task::spawn_blocking(move || log.close()).await;
    }
    if let Some(history) = shared.engine.history().cloned() {
        let _ = tokio::task::spawn_blocking(move || history.close()).await;
    }
    admin_stop.cancel();
    if let Some(uploads) = uploads {
        let _ = uploads.await;
    }
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    info!("stopped");
    Ok(())
}

/// `redis` mode: connects to the cluster, loads the function library,
/// loads every partition into the engine's cache and starts following them.
async fn connect_redis(
    config: &EngineConfig,
    history: Option<history::RetentionRules>,
    engine: &Engine,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> Result<(), ServerError> {
    let optional = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let options = ClusterOptions {
        nodes: config.redis_nodes.clone(),
        username: optional(&config.redis_username),
        password: optional(&config.redis_password),
        op_timeout: Duration::from_millis(config.redis_op_timeout_ms.max(1)),
        namespace: config.redis_namespace.clone(),
        wait_replicas: (config.redis_wait_replicas, config.redis_wait_ms),
        tls: redis_tls(config)?,
    };
    let failed = |e: crate::cluster::RedisError| ServerError::Engine(e.to_string());
    let cluster = Cluster::connect(options).await.map_err(failed)?;
    tasks.spawn(cluster.clone().refresh_task(Duration::from_secs(5), stop.clone()));
    let check_every = Duration::from_millis(config.redis_check_ms.max(10));
    let feed = Feed::start(cluster.clone(), Arc::new(engine.clone()), check_every, tasks, stop.clone())
        .await
        .map_err(failed)?;
    info!(nodes = ?config.redis_nodes, "engine: redis cluster");
    engine.attach_remote(Arc::new(Remote::new(cluster, feed, history)));
    Ok(())
}

/// Reads the PEM files `[engine]` names for TLS to Redis.
fn redis_tls(config: &EngineConfig) -> Result<Option<RedisTls>, ServerError> {
    if !config.redis_tls {
        return Ok(None);
    }
    let read = |key: &str, path: &str| {
        std::fs::read(path).map_err(|e| ServerError::Engine(format!("engine.{key} '{path}': {e}")))
    };
    let root_cert = match config.redis_tls_ca_path.as_str() {
        "" => None,
        path => Some(read("redis_tls_ca_path", path)?),
    };
    let client = match (config.redis_tls_cert_path.as_str(), config.redis_tls_key_path.as_str()) {
        ("", _) | (_, "") => None,
        (cert, key) => Some((read("redis_tls_cert_path", cert)?, read("redis_tls_key_path", key)?)),
    };
    Ok(Some(RedisTls { root_cert, client }))
}

/// A gate as the accept loops see it: the gate, its limits and its
/// connection cap, shared by all its endpoints.
struct Door<G> {
    name: &'static str,
    gate: Arc<G>,
    limits: Limits,
    max_connections: usize,
    connections: Arc<Semaphore>,
    last_refusal_log: Mutex<Option<Instant>>,
    /// `*key` encryption on the plain TCP endpoints, when configured.
    key: Option<Arc<GateKey>>,
}

impl<G> Door<G> {
    fn new(name: &'static str, gate: Arc<G>, limits: Limits, config: &GateConfig) -> Result<Self, ServerError> {
        Ok(Door {
            name,
            gate,
            limits,
            max_connections: config.max_connections,
            connections: Arc::new(Semaphore::new(config.max_connections)),
            last_refusal_log: Mutex::new(None),
            key: GateKey::load(name, &config.ecdh)?,
        })
    }

    /// A connection slot, or `None` (logged at most once a second) at the cap.
    fn admit(&self, shared: &App, peer: SocketAddr) -> Option<OwnedSemaphorePermit> {
        match self.connections.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                refused(shared, "limit");
                let mut last = self.last_refusal_log.lock().unwrap_or_else(|e| e.into_inner());
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    let (gate, max_connections) = (self.name, self.max_connections);
                    warn!(%peer, gate, max_connections, "connection limit reached: closing new connections");
                    *last = Some(Instant::now());
                }
                None
            }
        }
    }
}

/// A gate's limits for its connections.
fn limits(
    config: &GateConfig,
    (outbox_len, outbox_bytes): (usize, usize),
    ping_every: Option<Duration>,
    auth_timeout: Option<Duration>,
) -> Limits {
    let idle_timeout = config.idle_timeout();
    Limits {
        idle_timeout,
        max_frame_len: config.max_frame_len,
        max_pending_answers: config.max_pending_answers,
        outbox_len,
        outbox_bytes,
        ping_every: ping_every.unwrap_or(idle_timeout / 3),
        auth_timeout,
    }
}

/// One listening socket of a gate.
struct Endpoint {
    listener: TcpListener,
    /// `Some` for a TLS endpoint.
    tls: Option<Arc<TlsState>>,
    handshake_timeout: Duration,
    /// FPNN over WebSocket (after an HTTP upgrade) rather than plain FPNN,
    /// with the sessions per address of the gate's WebSocket endpoints.
    websocket: Option<Arc<web::PerIp>>,
}

/// Runs `accept` until `accepting` is cancelled; the listener closes then.
async fn accept_until(accept: impl Future<Output = ()>, accepting: CancellationToken) {
    tokio::select! {
        _ = accept => {}
        _ = accepting.cancelled() => {}
    }
}

/// Accepts connections on one endpoint and spawns their pumps.
async fn accept_loop<G: Gate>(
    endpoint: Endpoint,
    door: Arc<Door<G>>,
    shared: Arc<App>,
    stop: Stop,
    tracker: TaskTracker,
    ids: Arc<AtomicU64>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let (stream, peer) = match endpoint.listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                // Usually out of file descriptors: wait for some to free up.
                error!(error = %e, retry_in = ?backoff, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(5);
        let Some(permit) = door.admit(&shared, peer) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let id = ids.fetch_add(1, Ordering::Relaxed) + 1;
        let (gate, limits, shared, stop) = (door.gate.clone(), door.limits, shared.clone(), stop.clone());
        let websocket = endpoint.websocket.clone();
        let session =
            Accepted { gate, limits, shared: shared.clone(), stop, tracker: tracker.clone(), id, peer, permit };
        let kind = match (&endpoint.tls, websocket.is_some()) {
            (Some(_), true) => "wss",
            (None, true) => "websocket",
            (Some(_), false) => "tls",
            (None, false) => "fpnn",
        };
        shared.metrics.connection_accepted(kind);
        match &endpoint.tls {
            Some(tls) => {
                let (acceptor, handshake_timeout) = (tls.acceptor(), endpoint.handshake_timeout);
                let shared = shared.clone();
                tracker.spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_accepted(stream, session, websocket).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            refused(&shared, "tls_handshake");
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            refused(&shared, "tls_handshake_timeout");
                        }
                    }
                });
            }
            None => match (&door.key, websocket) {
                // Plain FPNN on a gate with `*key`: the first packet decides.
                (Some(key), None) => {
                    tracker.spawn(encrypted::serve(stream, key.clone(), session));
                }
                (_, websocket) => {
                    tracker.spawn(serve_accepted(stream, session, websocket));
                }
            },
        }
    }
}

/// Plain FPNN runs the pump at once; a WebSocket endpoint first serves
/// HTTP until the upgrade, then runs the same pump.
async fn serve_accepted<S, G>(stream: S, session: Accepted<G>, websocket: Option<Arc<web::PerIp>>)
where
    S: crate::session::Transport + Send + 'static,
    G: Gate,
{
    if let Some(per_ip) = websocket {
        web::serve(stream, session, per_ip).await;
    } else {
        let Accepted { gate, limits, shared, stop, id, peer, permit, .. } = session;
        pump::serve(stream, BytesMut::new(), peer, id, gate, limits, shared, stop, permit).await;
    }
}

fn refused(shared: &App, reason: &str) {
    shared.metrics.connection_refused(reason);
}

/// Reloads the TLS certificate and key on SIGHUP.
async fn reload_on_sighup(tls: Arc<TlsState>, stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            warn!("cannot listen for SIGHUP: TLS certificates will not be reloaded");
            return;
        };
        loop {
            tokio::select! {
                _ = hangups.recv() => match tls.reload() {
                    Ok(()) => info!("SIGHUP: TLS certificate and key reloaded"),
                    Err(e) => error!(error = %e, "SIGHUP: TLS reload failed; keeping the previous certificate"),
                },
                _ = stop.cancelled() => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tls;
        stop.cancelled().await;
    }
}

async fn sweep_replay_cache(gate: Arc<ServerGate>, token: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => gate.sweep(clock::now_secs()),
            _ = token.cancelled() => return,
        }
    }
}
