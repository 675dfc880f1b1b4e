//! The HTTP listener for operators: `/metrics` (Prometheus), `/healthz` (the
//! process is up) and `/readyz` (it accepts FPNN connections; 503 while
//! draining, or while the redis engine's last round trip to Redis failed).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App as Shared;

/// Serves the admin endpoints until `stop` is cancelled.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    crate::http::serve("admin", listener, stop, move |request| {
        let response = respond(&shared, &request);
        async move { response }
    })
    .await;
}

fn respond(shared: &Shared, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let (rooms, memberships, bans) = shared.engine.stats();
            let (events, messages) = (shared.engine.events().stats(), shared.engine.message_stats());
            match shared.metrics.render(rooms, memberships, bans, events, messages) {
                Some(exposition) => Response::builder()
                    .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                    .body(Full::new(Bytes::from(exposition)))
                    .expect("a valid response"),
                None => text(StatusCode::NOT_FOUND, "metrics are off\n".into()),
            }
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" if !shared.ready.load(Ordering::Relaxed) => {
            text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into())
        }
        "/readyz" if !shared.engine.store_healthy() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "redis unreachable (engine.kind = redis)\n".into())
        }
        "/readyz" => text(StatusCode::OK, "ready\n".into()),
        _ => text(StatusCode::NOT_FOUND, "try /metrics, /healthz or /readyz\n".into()),
    }
}
