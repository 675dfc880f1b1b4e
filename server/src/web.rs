//! The client gate's HTTP endpoint: `GET /service/websocket` upgrades to
//! FPNN over WebSocket (as the RTM WebSocket SDK connects), and the session
//! then runs in the same pump, with the same gate, as a TCP one
//! (`session/websocket.rs` turns the WebSocket back into a byte stream).
//!
//! HTTP is `hyper`'s and the WebSocket framing `tungstenite`'s; this file
//! only decides: the path (404 elsewhere), a plain request on it (426), the
//! browser's origin against `websocket.allowed_origins` (403), and how long
//! the upgrade may take (`websocket.handshake_timeout_secs`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use hyper::header::{HeaderValue, CONNECTION, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::debug;

use crate::app::App;
use crate::session::pump;
use crate::session::websocket::WsBytes;
use crate::session::{Accepted, Gate};

/// The path the RTM WebSocket SDK connects to.
pub(crate) const WEBSOCKET_PATH: &str = "/service/websocket";

/// WebSocket sessions per client address, and their bound
/// (`websocket.max_connections_per_ip`; 0 = none).
pub(crate) struct PerIp {
    sessions: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
}

impl PerIp {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { sessions: Mutex::new(HashMap::new()), max })
    }

    /// A session slot for `ip`, or `None` at the bound.
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let count = sessions.entry(ip).or_insert(0);
        if self.max > 0 && *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot { per_ip: self.clone(), ip })
    }
}

/// Held for a session's life.
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut sessions = self.per_ip.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = sessions.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                sessions.remove(&self.ip);
            }
        }
    }
}

/// The web chat page's files (`examples/web-chat/`), built in.
const CHAT_FILES: &[(&str, &str, &str)] = &[
    ("/chat/", "text/html; charset=utf-8", include_str!("../../examples/web-chat/index.html")),
    ("/chat/index.html", "text/html; charset=utf-8", include_str!("../../examples/web-chat/index.html")),
    ("/chat/chat.js", "text/javascript; charset=utf-8", include_str!("../../examples/web-chat/chat.js")),
    ("/chat/fpnn.js", "text/javascript; charset=utf-8", include_str!("../../examples/web-chat/fpnn.js")),
    ("/chat/msgpack.min.js", "text/javascript; charset=utf-8", include_str!("../../examples/web-chat/msgpack.min.js")),
];

/// `/chat/…` when `websocket.chat_page` is on: the page, and with
/// `websocket.demo_token_pid` set, `/chat/token?uid=N`, which hands a login
/// token for any uid to anyone (a demo: never turn it on in production).
fn chat_page(shared: &App, request: &Request<hyper::body::Incoming>) -> Option<Response<Full<Bytes>>> {
    let config = &shared.config.websocket;
    let path = request.uri().path();
    if !config.chat_page || request.method() != Method::GET {
        return None;
    }
    let respond = |status: StatusCode, kind: &str, body: String| {
        Response::builder().status(status).header("content-type", kind).body(Full::new(Bytes::from(body))).ok()
    };
    if path == "/chat" {
        return Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header("location", "/chat/")
            .body(Full::new(Bytes::new()))
            .ok();
    }
    if path == "/chat/token" && config.demo_token_pid != 0 {
        let pid = config.demo_token_pid;
        let uid = request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("uid=")))
            .and_then(|v| v.parse::<i64>().ok());
        let Some(uid) = uid else {
            return respond(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", "uid=<number> is needed\n".into());
        };
        let revoked_at = shared.engine.tokens_revoked_at(crate::model::UserKey { pid, uid });
        let token = shared.tokens.issue(pid, uid, crate::clock::now_ms(), revoked_at)?;
        let body = serde_json::json!({ "pid": pid, "token": token }).to_string();
        return respond(StatusCode::OK, "application/json", body);
    }
    let (_, kind, body) = CHAT_FILES.iter().find(|(file, _, _)| *file == path)?;
    respond(StatusCode::OK, kind, (*body).to_owned())
}

/// Serves HTTP on one accepted connection until it upgrades (then its
/// session runs on the tracker), closes, or takes longer than the
/// handshake timeout.
pub(crate) async fn serve<S, G>(stream: S, upgrade: Accepted<G>, per_ip: Arc<PerIp>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    G: Gate,
{
    let shared = upgrade.shared.clone();
    let peer = upgrade.peer;
    let timeout = Duration::from_secs(shared.config.websocket.handshake_timeout_secs.max(1));
    // The session is made once, by the one request that upgrades.
    let pending = Arc::new(Mutex::new(Some(upgrade)));
    let service = hyper::service::service_fn(move |request| {
        let response = respond(request, &pending, &per_ip);
        async move { Ok::<_, Infallible>(response) }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades();
    match tokio::time::timeout(timeout, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(%peer, error = %e, "WebSocket endpoint: HTTP error"),
        Err(_) => {
            debug!(%peer, "WebSocket endpoint: no upgrade within the handshake timeout");
            shared.metrics.connection_refused("websocket_handshake_timeout");
        }
    }
}

fn respond<G: Gate>(
    request: Request<hyper::body::Incoming>,
    pending: &Mutex<Option<Accepted<G>>>,
    per_ip: &Arc<PerIp>,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &str| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(format!("{body}\n"))))
            .expect("a valid response")
    };
    if request.uri().path() != WEBSOCKET_PATH {
        let upgrade = pending.lock().unwrap_or_else(|e| e.into_inner());
        let page = upgrade.as_ref().and_then(|u| chat_page(&u.shared, &request));
        return page
            .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found: FPNN over WebSocket is at /service/websocket"));
    }
    let wants_websocket = request
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")));
    let key = request.headers().get(SEC_WEBSOCKET_KEY).cloned();
    let version_13 = request.headers().get("sec-websocket-version").is_some_and(|v| v.as_bytes() == b"13");
    let (true, Some(key), true, &Method::GET) = (wants_websocket, key, version_13, request.method()) else {
        let mut response = text(
            StatusCode::UPGRADE_REQUIRED,
            "this path speaks FPNN over WebSocket (version 13): connect with a WebSocket client",
        );
        response.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
        response.headers_mut().insert("sec-websocket-version", HeaderValue::from_static("13"));
        return response;
    };
    let Some(upgrade) = pending.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return text(StatusCode::BAD_REQUEST, "this connection has upgraded already");
    };
    let allowed = &upgrade.shared.config.websocket.allowed_origins;
    if !allowed.is_empty() {
        let origin = request.headers().get(ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !allowed.iter().any(|a| a == origin) {
            debug!(peer = %upgrade.peer, origin, "WebSocket origin not allowed");
            upgrade.shared.metrics.connection_refused("websocket_origin");
            return text(StatusCode::FORBIDDEN, "this origin may not connect (websocket.allowed_origins)");
        }
    }
    let Some(slot) = per_ip.acquire(upgrade.peer.ip()) else {
        debug!(peer = %upgrade.peer, "WebSocket sessions per address at their bound");
        upgrade.shared.metrics.connection_refused("websocket_per_ip");
        return text(
            StatusCode::TOO_MANY_REQUESTS,
            "too many WebSocket sessions from this address (websocket.max_connections_per_ip)",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let tracker = upgrade.tracker.clone();
    tracker.spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let Accepted { gate, limits, shared, stop, id, peer, permit, .. } = upgrade;
                let ping = Duration::from_secs(shared.config.websocket.ping_secs);
                let stream = WsBytes::after_handshake(TokioIo::new(upgraded), limits.max_frame_len, Some(ping)).await;
                pump::serve(stream, BytesMut::new(), peer, id, gate, limits, shared, stop, permit).await;
                drop(slot);
            }
            Err(e) => debug!(peer = %upgrade.peer, error = %e, "WebSocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "Upgrade")
        .header(SEC_WEBSOCKET_ACCEPT, accept)
        .body(Full::new(Bytes::new()))
        .expect("a valid response")
}
