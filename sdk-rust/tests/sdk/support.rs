//! The real server on a background runtime, and client options for it.

use std::net::SocketAddr;
use std::time::Duration;

use rtm_sdk::ClientOptions;
use rtm_server::config::ProjectConfig;
use rtm_server::Config;

pub const PID: i64 = 1000;
pub const SECRET: &str = "sdk-test-secret";

/// `rtm-server` running on its own thread until dropped.
pub struct ServerThread {
    /// The server API.
    pub addr: SocketAddr,
    /// The client gate.
    pub client_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Closed when the server thread ends, to wait for it with a timeout.
    stopped: Option<std::sync::mpsc::Receiver<()>>,
}

impl ServerThread {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// The client gate over TLS with this certificate and key (PEM files).
    pub fn start_tls(cert_path: &std::path::Path, key_path: &std::path::Path) -> Self {
        Self::start_with(Some((cert_path.display().to_string(), key_path.display().to_string())))
    }

    fn start_with(tls: Option<(String, String)>) -> Self {
        let mut config = Config { projects: vec![ProjectConfig::new(PID, SECRET)], ..Config::default() };
        config.metrics.listen.clear();
        config.storage.data_dir.clear();
        // The client gate on any free port, so tests can run side by side.
        let client_tls = tls.is_some();
        config.gates.client.listeners =
            vec![rtm_server::config::Endpoint { addr: "127.0.0.1:0".parse().unwrap(), tls: client_tls }];
        if let Some((cert, key)) = tls {
            config.tls.cert_path = cert;
            config.tls.key_path = key;
        }
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _done = done_tx;
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let bind = || rtm_server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
                let (server, client) = (bind(), bind());
                addr_tx.send((server.local_addr().unwrap(), client.local_addr().unwrap())).unwrap();
                let listeners = rtm_server::Listeners {
                    server: vec![(server, false)],
                    client: vec![(client, client_tls)],
                    websocket: vec![],
                    admin: None,
                    recording_api: None,
                };
                rtm_server::serve(listeners, config, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let (addr, client_addr) = addr_rx.recv_timeout(Duration::from_secs(10)).expect("the server starts");
        Self { addr, client_addr, stop: Some(stop), thread: Some(thread), stopped: Some(done_rx) }
    }

    pub fn options(&self) -> ClientOptions {
        ClientOptions::new(self.addr.to_string(), PID, SECRET).quest_timeout(Duration::from_secs(10))
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // A server that does not stop fails the test instead of hanging the suite.
        if let Some(stopped) = self.stopped.take() {
            let ended = stopped.recv_timeout(Duration::from_secs(30));
            if ended == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                if !std::thread::panicking() {
                    panic!("the server thread did not stop within 30 s of its shutdown signal");
                }
                return; // already failing: leave the thread rather than hang
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
