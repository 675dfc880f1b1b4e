//! The recording HTTP API with a real HTTP client (hyper's): Basic auth,
//! the seed's routes, bodies and status codes, the per-project limit, and
//! the OpenAPI description.

use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rtm_protocol::client::MessageBody;
use rtm_protocol::methods::{AddRoomMember, SendRoomMsg};
use rtm_server::config::ApiCredentials;
use serde_json::{json, Value as Json};

use crate::support::*;

const KEY: &str = "customer-key";
const CUSTOMER_SECRET: &str = "customer-secret";

/// One request on a fresh connection: `(status, JSON body)`.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    body: Option<Json>,
) -> (StatusCode, Json) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "rtm")
        .header("content-type", "application/json;charset=utf-8");
    if let Some((key, secret)) = auth {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"));
        request = request.header("authorization", format!("Basic {basic}"));
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let response = sender.send_request(request.body(Full::new(body)).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() { Json::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (status, json)
}

async fn api_server() -> TestServer {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    TestServer::start_with(move |c| {
        c.projects[0].recording_api = Some(ApiCredentials { key: KEY.into(), secret: CUSTOMER_SECRET.into() });
        c.recording.dir =
            std::env::temp_dir().join(format!("rtm-recording-api-{}-{n}", std::process::id())).display().to_string();
        c.recording.poll_ms = 10;
    })
    .await
}

const AUTH: Option<(&str, &str)> = Some((KEY, CUSTOMER_SECRET));

#[tokio::test]
async fn a_recording_runs_through_the_http_api() {
    let server = api_server().await;
    let api = server.recording_api_addr;
    let base = format!("/v1/apps/{PID}/cloud_recording");
    let mut backend = server.client().await;
    backend.call(&AddRoomMember { rid: 40, uid: 1 }).await.unwrap();

    let (status, acquired) = call(
        api,
        "POST",
        &format!("{base}/acquire"),
        AUTH,
        Some(json!({"cname": "40", "uid": "527841", "clientRequest": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{acquired}");
    assert_eq!((acquired["cname"].as_str(), acquired["uid"].as_str()), (Some("40"), Some("527841")));
    let resource = acquired["resourceId"].as_str().unwrap().to_owned();

    let start_body = json!({"cname": "40", "uid": "527841", "clientRequest": {
        "recordingConfig": {"maxIdleTime": 30, "unSubscribeUids": ["3"]},
        "storageConfig": {"vendor": "local", "fileNamePrefix": ["games", "40"]}}});
    let (status, started) = call(
        api,
        "POST",
        &format!("{base}/resourceid/{resource}/mode/individual/start"),
        AUTH,
        Some(start_body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let sid = started["sid"].as_str().unwrap().to_owned();
    // The same resource id again: 201, the seed's "already recording" (code 7).
    let (status, again) =
        call(api, "POST", &format!("{base}/resourceid/{resource}/mode/individual/start"), AUTH, Some(start_body)).await;
    assert_eq!((status, again["code"].as_i64()), (StatusCode::CREATED, Some(7)));

    for (from, mid) in [(1, 1), (3, 2), (2, 3)] {
        let send = SendRoomMsg {
            mtype: 51,
            from,
            rid: 40,
            mid,
            msg: MessageBody::Text(format!("from {from}")),
            attrs: String::new(),
        };
        backend.call(&send).await.unwrap();
    }
    // The recording reads messages once stored; let it take these before the update.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let update =
        json!({"cname": "40", "uid": "527841", "clientRequest": {"streamSubscribe": {"subscribeUids": ["1"]}}});
    let (status, _) = call(
        api,
        "POST",
        &format!("{base}/resourceid/{resource}/sid/{sid}/mode/individual/update"),
        AUTH,
        Some(update),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let query = format!("{base}/resourceid/{resource}/sid/{sid}/mode/individual/query");
    let (status, queried) = call(api, "GET", &query, AUTH, None).await;
    assert_eq!(status, StatusCode::OK, "{queried}");
    assert_eq!(queried["serverResponse"]["status"], 5, "{queried}");
    assert_eq!(queried["serverResponse"]["fileListMode"], "json");

    let stop = format!("{base}/resourceid/{resource}/sid/{sid}/mode/individual/stop");
    let (status, stopped) =
        call(api, "POST", &stop, AUTH, Some(json!({"cname": "40", "uid": "527841", "clientRequest": {}}))).await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["serverResponse"]["uploadingStatus"], "uploaded");
    let mut files: Vec<(String, String)> = stopped["serverResponse"]["fileList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["uid"].as_str().unwrap().to_owned(), f["filename"].as_str().unwrap().to_owned()))
        .collect();
    files.sort();
    assert_eq!(
        files,
        vec![
            ("1".into(), format!("{PID}/games/40/{sid}_u1.manifest.json")),
            ("2".into(), format!("{PID}/games/40/{sid}_u2.manifest.json")),
        ],
        "uid 3 unsubscribed"
    );
    let (status, twice) = call(api, "POST", &stop, AUTH, Some(json!({"cname": "40", "uid": "527841"}))).await;
    assert_eq!((status, twice["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(49)));
    let (status, _) =
        call(api, "GET", &format!("{base}/resourceid/other/sid/{sid}/mode/individual/query"), AUTH, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the sid belongs to another resource id");
    let (status, missing) =
        call(api, "GET", &format!("{base}/resourceid/{resource}/sid/nope/mode/mix/query"), AUTH, None).await;
    assert_eq!((status, missing["code"].as_i64()), (StatusCode::NOT_FOUND, Some(404)));
    server.stop().await;
}

#[tokio::test]
async fn credentials_bodies_and_limits_are_checked() {
    let server = api_server().await;
    let api = server.recording_api_addr;
    let acquire = format!("/v1/apps/{PID}/cloud_recording/acquire");
    let body = Some(json!({"cname": "7", "uid": "1", "clientRequest": {}}));
    for auth in [None, Some((KEY, "wrong")), Some(("other", CUSTOMER_SECRET))] {
        let (status, answer) = call(api, "POST", &acquire, auth, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(answer["message"], "Invalid authentication credentials");
    }
    // A project without recording_api credentials cannot use the API at all.
    let (status, _) =
        call(api, "POST", &format!("/v1/apps/{OTHER_PID}/cloud_recording/acquire"), AUTH, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, answer) = call(api, "POST", &acquire, AUTH, Some(json!({"cname": "lobby", "uid": "1"}))).await;
    assert_eq!((status, answer["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(2)));
    let (status, answer) = call(api, "POST", &acquire, AUTH, Some(json!("not an object"))).await;
    assert_eq!((status, answer["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(8)));
    let (status, _) = call(api, "GET", &acquire, AUTH, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "acquire is a POST");
    let (status, answer) = call(
        api,
        "POST",
        &format!("/v1/apps/{PID}/cloud_recording/resourceid/nope/mode/mix/start"),
        AUTH,
        body.clone(),
    )
    .await;
    assert_eq!((status, answer["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(433)));
    let (status, _) = call(
        api,
        "POST",
        &format!("/v1/apps/{PID}/cloud_recording/resourceid/x/mode/stereo/start"),
        AUTH,
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Ten recording requests a second per project (counted with the FPNN ones).
    let mut limited = 0;
    for _ in 0..25 {
        let (status, answer) = call(api, "POST", &acquire, AUTH, body.clone()).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(answer["code"], 429);
            limited += 1;
        }
    }
    assert!(limited >= 5, "{limited} of 25 limited");

    let (status, doc) = call(api, "GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["paths"].as_object().unwrap().len(), 5);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    server.stop().await;
}
