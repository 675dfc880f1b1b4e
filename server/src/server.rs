//! The accept loop and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::auth::Authenticator;
use crate::clock;
use crate::config::Config;
use crate::connection::{self, Shared, Stop};
use crate::error::ServerError;
use crate::state::State;

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

/// Serves FPNN on `listener` until `shutdown` completes, then drains.
///
/// On shutdown the listener closes at once; every connection answers the
/// quests it has already received (new ones get 20014 "server stopping") and
/// closes. Connections still open after `server.drain_timeout_secs` are cut.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    config.validate()?;
    let max_connections = config.server.max_connections;
    let drain_timeout = config.server.drain_timeout();
    let shared = Arc::new(Shared { auth: Authenticator::new(&config), state: State::default(), config });
    let stop = Stop { drain: CancellationToken::new(), abort: CancellationToken::new() };
    let tracker = TaskTracker::new();
    shared.state.spawn_background(&tracker, stop.drain.clone());
    tracker.spawn(sweep_replay_cache(shared.clone(), stop.drain.clone()));

    let limit = Arc::new(Semaphore::new(max_connections));
    let mut next_id = 0u64;
    let mut backoff = Duration::from_millis(5);
    let mut last_refusal_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
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
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                warn!(%peer, max_connections, "connection limit reached: closing new connections");
                last_refusal_log = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        tracker.spawn(connection::serve(stream, peer, next_id, shared.clone(), stop.clone(), permit));
    }

    drop(listener);
    info!(open_connections = max_connections - limit.available_permits(), "shutting down: draining connections");
    stop.drain.cancel();
    tracker.close();
    if tokio::time::timeout(drain_timeout, tracker.wait()).await.is_err() {
        warn!(?drain_timeout, "drain timeout reached: closing the remaining connections");
        stop.abort.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
    }
    info!("stopped");
    Ok(())
}

async fn sweep_replay_cache(shared: Arc<Shared>, token: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => shared.auth.sweep(clock::now_secs()),
            _ = token.cancelled() => return,
        }
    }
}
