//! The accept loops and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::app::App;
use crate::clock;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::ServerError;
use crate::gate::ServerGate;
use crate::metrics::Metrics;
use crate::session::pump::{self, Limits, Stop};
use crate::storage::{self, StorageSettings};
use crate::tls::TlsState;

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
    /// Plain FPNN.
    pub fpnn: TcpListener,
    /// FPNN inside TLS (needs `tls.cert_path` and `tls.key_path`).
    pub tls: Option<TcpListener>,
    /// HTTP `/metrics`, `/healthz`, `/readyz`.
    pub admin: Option<TcpListener>,
}

/// Serves FPNN on `listener`, plus the TLS and metrics listeners the config
/// names, until `shutdown` completes; then drains.
///
/// On shutdown the listeners close at once and `/readyz` turns 503; every
/// connection answers the quests it has already read (later ones get 20014
/// "server stopping") and closes. Connections still open after
/// `server.drain_timeout_secs` are cut.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    config.validate()?;
    let tls = match config.tls.addr()? {
        Some(addr) => Some(bind(addr).map_err(|e| ServerError::Bind { what: "tls.listen", addr, source: e })?),
        None => None,
    };
    let admin = match config.metrics.addr()? {
        Some(addr) => Some(bind(addr).map_err(|e| ServerError::Bind { what: "metrics.listen", addr, source: e })?),
        None => None,
    };
    serve(Listeners { fpnn: listener, tls, admin }, config, shutdown).await
}

/// Like [`run`], with every listener bound by the caller (tests bind them on
/// port 0).
pub async fn serve(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.validate()?;
    let tls = match &listeners.tls {
        Some(_) => Some(Arc::new(TlsState::load(&config.tls)?)),
        None => None,
    };
    let max_connections = config.server.max_connections;
    let drain_timeout = config.server.drain_timeout();
    let handshake_timeout = config.tls.handshake_timeout();
    let metrics = listeners.admin.is_some().then(Metrics::new);
    let engine = Engine::default();
    if let Some(dir) = config.storage.dir() {
        let settings = StorageSettings {
            dir,
            policy: config.storage.fsync,
            snapshot_after_bytes: config.storage.snapshot_after_bytes,
            repair: config.storage.repair,
        };
        let errors = match &metrics {
            Some(m) => m.storage_write_errors.clone(),
            None => prometheus::IntCounter::new("unregistered", "metrics are off").expect("a valid counter"),
        };
        // Start-up work: nothing else runs yet, so blocking here is fine.
        let log = storage::open(&settings, engine.persisted(), errors)?;
        engine.attach_log(log);
    }
    // The hold starts once recovery is done: the releases it covers come after.
    engine.events().configure((config.events.startup_hold_secs as i64).saturating_mul(1000), clock::now_ms());
    let shared = Arc::new(App { engine, metrics, ready: AtomicBool::new(true), config });
    let gate = Arc::new(ServerGate::new(shared.clone()));
    let stop = Stop { drain: CancellationToken::new(), abort: CancellationToken::new() };
    let tracker = TaskTracker::new();
    shared.engine.spawn_background(&tracker, stop.drain.clone());
    tracker.spawn(sweep_replay_cache(gate.clone(), stop.drain.clone()));
    // The admin listener outlives the drain, so /readyz can report it.
    let admin_stop = CancellationToken::new();
    let admin = listeners.admin.map(|l| tokio::spawn(crate::admin::serve(l, shared.clone(), admin_stop.clone())));
    if let Some(tls) = &tls {
        tracker.spawn(reload_on_sighup(tls.clone(), stop.drain.clone()));
    }

    let limits = Limits {
        idle_timeout: shared.config.server.idle_timeout(),
        max_frame_len: shared.config.server.max_frame_len,
        max_pending_answers: shared.config.server.max_pending_answers,
        outbox_len: shared.config.events.listener_queue,
    };
    let accept = Acceptor {
        shared: shared.clone(),
        gate,
        limits,
        stop: stop.clone(),
        tracker: tracker.clone(),
        limit: Arc::new(Semaphore::new(max_connections)),
        next_id: 0,
        last_refusal_log: None,
    };
    accept.run(listeners.fpnn, listeners.tls.zip(tls), handshake_timeout, shutdown).await;

    shared.ready.store(false, Ordering::Relaxed);
    info!("shutting down: draining connections");
    stop.drain.cancel();
    tracker.close();
    if tokio::time::timeout(drain_timeout, tracker.wait()).await.is_err() {
        warn!(?drain_timeout, "drain timeout reached: closing the remaining connections");
        stop.abort.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
    }
    if let Some(log) = shared.engine.log().cloned() {
        // Everything appended is written and synced before we return.
        let _ = tokio::task::spawn_blocking(move || log.close()).await;
    }
    admin_stop.cancel();
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    info!("stopped");
    Ok(())
}

struct Acceptor {
    shared: Arc<App>,
    gate: Arc<ServerGate>,
    limits: Limits,
    stop: Stop,
    tracker: TaskTracker,
    limit: Arc<Semaphore>,
    next_id: u64,
    last_refusal_log: Option<Instant>,
}

impl Acceptor {
    /// Accepts until `shutdown` completes; the listeners close when it returns.
    async fn run(
        mut self,
        fpnn: TcpListener,
        tls: Option<(TcpListener, Arc<TlsState>)>,
        handshake_timeout: Duration,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut backoff = Duration::from_millis(5);
        tokio::pin!(shutdown);
        loop {
            let (accepted, secure) = tokio::select! {
                _ = &mut shutdown => return,
                accepted = fpnn.accept() => (accepted, false),
                accepted = accept_tls(&tls) => (accepted, true),
            };
            let (stream, peer) = match accepted {
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
            let Some(permit) = self.admit(peer) else {
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            self.next_id += 1;
            let (id, shared, stop) = (self.next_id, self.shared.clone(), self.stop.clone());
            let (gate, limits) = (self.gate.clone(), self.limits);
            match (&tls, secure) {
                (Some((_, tls)), true) => {
                    if let Some(m) = &shared.metrics {
                        m.connection_accepted("tls");
                    }
                    let acceptor = tls.acceptor();
                    self.tracker.spawn(async move {
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                pump::serve(stream, peer, id, gate, limits, shared, stop, permit).await;
                            }
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
                _ => {
                    if let Some(m) = &shared.metrics {
                        m.connection_accepted("fpnn");
                    }
                    self.tracker.spawn(pump::serve(stream, peer, id, gate, limits, shared, stop, permit));
                }
            }
        }
    }

    /// A connection slot, or `None` (logged at most once a second) at the limit.
    fn admit(&mut self, peer: SocketAddr) -> Option<OwnedSemaphorePermit> {
        match self.limit.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                refused(&self.shared, "limit");
                if self.last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    let max_connections = self.shared.config.server.max_connections;
                    warn!(%peer, max_connections, "connection limit reached: closing new connections");
                    self.last_refusal_log = Some(Instant::now());
                }
                None
            }
        }
    }
}

fn refused(shared: &App, reason: &str) {
    if let Some(m) = &shared.metrics {
        m.connection_refused(reason);
    }
}

async fn accept_tls(tls: &Option<(TcpListener, Arc<TlsState>)>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match tls {
        Some((listener, _)) => listener.accept().await,
        None => std::future::pending().await,
    }
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
