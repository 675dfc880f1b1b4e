//! The recording HTTP API: the five recording methods in the shape of the
//! cloud-recording REST API the product comes from, for backends that
//! drive recordings over HTTP.
//!
//! ```text
//! POST /v1/apps/{pid}/cloud_recording/acquire
//! POST /v1/apps/{pid}/cloud_recording/resourceid/{resourceid}/mode/{mode}/start
//! POST /v1/apps/{pid}/cloud_recording/resourceid/{resourceid}/sid/{sid}/mode/{mode}/update
//! GET  /v1/apps/{pid}/cloud_recording/resourceid/{resourceid}/sid/{sid}/mode/{mode}/query
//! POST /v1/apps/{pid}/cloud_recording/resourceid/{resourceid}/sid/{sid}/mode/{mode}/stop
//! GET  /v1/openapi.json
//! ```
//!
//! `cname` is the room id (as a string, like the seed's channel name).
//! Every request carries HTTP Basic credentials: the project's
//! `recording_api = { key, secret }`. Each route turns its JSON into the
//! FPNN method's typed request and runs the same handler (`cmd/`), so the
//! rules, limits and errors are the FPNN methods'; errors come back with
//! the seed's HTTP status and `code`.

// A route's error is the HTTP response itself, made once per request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use rtm_protocol::methods::{
    AcquireRecording, QueryRecording, RecordingFile, StartRecording, StopRecording, UpdateRecording,
};
use rtm_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::{OpenApi, ToSchema};

use crate::app::App;
use crate::cmd::{CmdContext, Handler};
use crate::error::RtmError;

/// Largest request body.
const MAX_BODY: usize = 64 * 1024;

/// A request's body must arrive within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API until `stop` is cancelled.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<App>, stop: CancellationToken) {
    crate::http::serve("recording API", listener, stop, move |request| {
        let shared = shared.clone();
        async move { respond(&shared, request).await }
    })
    .await;
}

/// `{cname, uid, clientRequest}`, the body of every POST.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecordingRequest {
    /// The room id, as a string.
    cname: String,
    /// Any string identifying the caller's recorder; echoed back.
    #[serde(default)]
    uid: String,
    #[serde(default)]
    client_request: ClientRequest,
}

/// `clientRequest`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClientRequest {
    /// `start`: what to record.
    #[serde(default)]
    recording_config: Option<RecordingConfig>,
    /// `start`: where the files go.
    #[serde(default)]
    storage_config: Option<StorageConfig>,
    /// `update`: whom to record from now on.
    #[serde(default)]
    stream_subscribe: Option<Subscribe>,
}

/// `clientRequest.recordingConfig`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecordingConfig {
    /// Seconds without a member before the recording stops (5 – 2,592,000; default 30).
    max_idle_time: Option<i64>,
    /// Stop after this many seconds (absent: no limit).
    max_recording_seconds: Option<i64>,
    /// Record only these senders (uids as strings).
    subscribe_uids: Option<Vec<String>>,
    /// Never record these senders.
    un_subscribe_uids: Option<Vec<String>>,
    /// Record only these message types.
    mtypes: Option<Vec<i64>>,
    /// Record the room's events too (our addition; default false).
    record_events: Option<bool>,
}

/// `clientRequest.storageConfig`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StorageConfig {
    /// `local` (the only one yet).
    vendor: Option<String>,
    /// Folders under the project's, joined with `/`.
    file_name_prefix: Option<Vec<String>>,
}

/// `clientRequest.streamSubscribe` (`update`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Subscribe {
    subscribe_uids: Option<Vec<String>>,
    un_subscribe_uids: Option<Vec<String>>,
}

/// The answer of `acquire`, `start` and `update`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Started {
    cname: String,
    uid: String,
    resource_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
}

/// The answer of `query` and `stop`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Status {
    resource_id: String,
    sid: String,
    server_response: ServerResponse,
}

/// `serverResponse`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServerResponse {
    /// Always `json`.
    file_list_mode: &'static str,
    file_list: Vec<FileEntry>,
    /// `query`: 5 recording, 6 stop requested, 8 ended, 20 failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<i64>,
    /// `query`: when the recording started, Unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    slice_start_time: Option<i64>,
    /// `stop`: `uploaded`, `backuped` or `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    uploading_status: Option<String>,
}

/// One file set (its manifest).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileEntry {
    filename: String,
    /// Always `message`.
    track_type: &'static str,
    /// The sender; `"0"` for `mix`.
    uid: String,
    mixed_all_user: bool,
    is_playable: bool,
    slice_start_time: i64,
}

impl From<RecordingFile> for FileEntry {
    fn from(f: RecordingFile) -> Self {
        Self {
            filename: f.filename,
            track_type: "message",
            uid: f.uid,
            mixed_all_user: f.mixed_all_users,
            is_playable: f.is_playable,
            slice_start_time: f.slice_start_time,
        }
    }
}

/// An error: the seed's `code` and a reason.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Failure {
    code: i64,
    reason: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rtm-server recording API",
        description = "Room recordings in the cloud-recording REST shape. HTTP Basic auth with the project's recording_api key and secret."
    ),
    paths(acquire, start, update, query, stop),
    components(schemas(
        RecordingRequest,
        ClientRequest,
        RecordingConfig,
        StorageConfig,
        Subscribe,
        Started,
        Status,
        ServerResponse,
        FileEntry,
        Failure
    ))
)]
struct ApiDoc;

/// The OpenAPI description, generated from the types and routes here.
pub(crate) fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().expect("the description serialises")
}

type Reply = Response<Full<Bytes>>;

fn json<T: Serialize>(status: StatusCode, body: &T) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json;charset=utf-8")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).expect("answers serialise"))))
        .expect("a valid response")
}

fn fail(status: StatusCode, code: i64, reason: impl Into<String>) -> Reply {
    json(status, &Failure { code, reason: reason.into() })
}

/// An RTM error as the seed's HTTP status and code.
fn failure(e: &RtmError) -> Reply {
    let (status, code) = match e.code {
        ErrorCode::RecordingInProgress => (StatusCode::CREATED, 7),
        ErrorCode::RecordingResourceInvalid => (StatusCode::BAD_REQUEST, 433),
        ErrorCode::RecordingNotFound => (StatusCode::NOT_FOUND, 404),
        ErrorCode::RecordingStopped => (StatusCode::BAD_REQUEST, 49),
        ErrorCode::RecordingRateLimited => (StatusCode::TOO_MANY_REQUESTS, 429),
        ErrorCode::RecordingUnavailable => (StatusCode::BAD_REQUEST, 62),
        ErrorCode::RtmUnknownError | ErrorCode::CoreUnknownError => (StatusCode::INTERNAL_SERVER_ERROR, 500),
        _ => (StatusCode::BAD_REQUEST, 2),
    };
    fail(status, code, e.ex.clone())
}

async fn respond(shared: &App, request: Request<hyper::body::Incoming>) -> Reply {
    let path: Vec<String> = request.uri().path().trim_matches('/').split('/').map(str::to_owned).collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let method = request.method().clone();
    if method == Method::GET && path == ["v1", "openapi.json"] {
        return Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(openapi_json())))
            .expect("a valid response");
    }
    let route = match path.as_slice() {
        ["v1", "apps", pid, "cloud_recording", rest @ ..] => pid.parse::<i64>().ok().map(|pid| (pid, rest.to_vec())),
        _ => None,
    };
    let Some((pid, rest)) = route else {
        return fail(StatusCode::NOT_FOUND, 404, "no Route matched with those values");
    };
    if !authorized(shared, pid, &request) {
        return json(StatusCode::UNAUTHORIZED, &serde_json::json!({ "message": "Invalid authentication credentials" }));
    }
    let body = if method == Method::POST {
        let collected =
            tokio::time::timeout(REQUEST_TIMEOUT, Limited::new(request.into_body(), MAX_BODY).collect()).await;
        match collected.unwrap_or_else(|_| Err("the body did not arrive in time".into())) {
            Ok(collected) => match serde_json::from_slice::<RecordingRequest>(&collected.to_bytes()) {
                Ok(body) => Some(body),
                Err(e) => return fail(StatusCode::BAD_REQUEST, 8, format!("the body is not the expected JSON: {e}")),
            },
            Err(_) => {
                return fail(StatusCode::BAD_REQUEST, 8, format!("the body is not readable or over {MAX_BODY} bytes"))
            }
        }
    } else {
        None
    };
    let ctx = CmdContext {
        engine: &shared.engine,
        tokens: &shared.tokens,
        recordings: &shared.recordings,
        limits: &shared.config.limits,
        pid,
        now_ms: crate::clock::now_ms(),
        session: None,
        encoding: rtm_protocol::Encoding::Json,
    };
    let result = match (&method, rest.as_slice(), body) {
        (&Method::POST, ["acquire"], Some(body)) => acquire(&ctx, body).await,
        (&Method::POST, ["resourceid", resource, "mode", mode, "start"], Some(body)) => {
            start(&ctx, resource, mode, body).await
        }
        (&Method::POST, ["resourceid", resource, "sid", sid, "mode", mode, "update"], Some(body)) => {
            update(&ctx, resource, sid, mode, body).await
        }
        (&Method::GET, ["resourceid", resource, "sid", sid, "mode", mode, "query"], None) => {
            query(&ctx, resource, sid, mode).await
        }
        (&Method::POST, ["resourceid", resource, "sid", sid, "mode", mode, "stop"], Some(_)) => {
            stop(&ctx, resource, sid, mode).await
        }
        _ => return fail(StatusCode::NOT_FOUND, 404, "no Route matched with those values"),
    };
    result.unwrap_or_else(|reply| reply)
}

/// Whether the request carries the project's key and secret.
fn authorized(shared: &App, pid: i64, request: &Request<hyper::body::Incoming>) -> bool {
    let Some(credentials) = shared.config.projects.iter().find(|p| p.pid == pid).and_then(|p| p.recording_api.as_ref())
    else {
        return false;
    };
    let given = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok());
    let expected = format!("{}:{}", credentials.key, credentials.secret);
    given.is_some_and(|given| crate::auth::constant_time_eq(&given, expected.as_bytes()))
}

type Routed = Result<Reply, Reply>;

fn room_of(cname: &str) -> Result<i64, Reply> {
    cname.trim().parse().map_err(|_| fail(StatusCode::BAD_REQUEST, 2, format!("cname '{cname}' is not a room id")))
}

fn mode_of(mode: &str) -> Result<(), Reply> {
    match mode {
        "individual" | "mix" => Ok(()),
        other => Err(fail(StatusCode::BAD_REQUEST, 2, format!("mode must be individual or mix, not '{other}'"))),
    }
}

fn uids(list: Option<Vec<String>>, key: &str) -> Result<Option<Vec<i64>>, Reply> {
    list.map(|l| {
        l.iter()
            .map(|u| {
                u.parse::<i64>().map_err(|_| fail(StatusCode::BAD_REQUEST, 2, format!("{key}: '{u}' is not a uid")))
            })
            .collect()
    })
    .transpose()
}

/// The recording `sid` must be the one started with `resource`.
async fn check_pair(ctx: &CmdContext<'_>, resource: &str, sid: &str) -> Result<(), Reply> {
    match Box::pin(ctx.recordings.resource_id_anywhere(ctx.pid, sid)).await {
        Ok(id) if id == resource => Ok(()),
        Ok(_) => Err(fail(StatusCode::BAD_REQUEST, 1003, "the sid was not started with this resource id")),
        Err(e) => Err(failure(&e)),
    }
}

/// Reserves a recording of room `cname` (valid 5 minutes).
#[utoipa::path(post, path = "/v1/apps/{pid}/cloud_recording/acquire", request_body = RecordingRequest,
    params(("pid" = i64, Path, description = "project id")),
    responses((status = 200, body = Started), (status = 400, body = Failure), (status = 401), (status = 429, body = Failure)))]
async fn acquire(ctx: &CmdContext<'_>, body: RecordingRequest) -> Routed {
    let rid = room_of(&body.cname)?;
    let answer = AcquireRecording { rid }.apply(ctx).await.map_err(|e| failure(&e))?;
    Ok(json(StatusCode::OK, &Started { cname: body.cname, uid: body.uid, resource_id: answer.resource_id, sid: None }))
}

/// Starts the recording.
#[utoipa::path(post, path = "/v1/apps/{pid}/cloud_recording/resourceid/{resourceid}/mode/{mode}/start",
    request_body = RecordingRequest,
    params(("pid" = i64, Path, description = "project id"), ("resourceid" = String, Path, description = "from acquire"),
        ("mode" = String, Path, description = "individual or mix")),
    responses((status = 200, body = Started), (status = 201, description = "already recording with this resource id", body = Failure),
        (status = 400, body = Failure), (status = 401), (status = 429, body = Failure)))]
async fn start(ctx: &CmdContext<'_>, resource: &str, mode: &str, body: RecordingRequest) -> Routed {
    mode_of(mode)?;
    let rid = room_of(&body.cname)?;
    let config = body.client_request.recording_config.unwrap_or_default();
    let storage = body.client_request.storage_config.unwrap_or_default();
    let request = StartRecording {
        resource_id: resource.to_owned(),
        rid,
        mode: mode.to_owned(),
        uids: uids(config.subscribe_uids, "subscribeUids")?,
        exclude_uids: uids(config.un_subscribe_uids, "unSubscribeUids")?,
        mtypes: config.mtypes,
        max_idle_seconds: config.max_idle_time,
        max_seconds: config.max_recording_seconds,
        storage: storage.vendor,
        file_prefix: storage.file_name_prefix.map(|parts| parts.join("/")),
        events: config.record_events,
    };
    let answer = request.apply(ctx).await.map_err(|e| failure(&e))?;
    let started = Started { cname: body.cname, uid: body.uid, resource_id: resource.to_owned(), sid: Some(answer.sid) };
    Ok(json(StatusCode::OK, &started))
}

/// Changes whom the recording records.
#[utoipa::path(post, path = "/v1/apps/{pid}/cloud_recording/resourceid/{resourceid}/sid/{sid}/mode/{mode}/update",
    request_body = RecordingRequest,
    params(("pid" = i64, Path, description = "project id"), ("resourceid" = String, Path), ("sid" = String, Path), ("mode" = String, Path)),
    responses((status = 200, body = Started), (status = 400, body = Failure), (status = 401), (status = 404, body = Failure)))]
async fn update(ctx: &CmdContext<'_>, resource: &str, sid: &str, mode: &str, body: RecordingRequest) -> Routed {
    mode_of(mode)?;
    check_pair(ctx, resource, sid).await?;
    let subscribe = body.client_request.stream_subscribe.unwrap_or_default();
    let request = UpdateRecording {
        sid: sid.to_owned(),
        uids: uids(subscribe.subscribe_uids, "subscribeUids")?,
        exclude_uids: uids(subscribe.un_subscribe_uids, "unSubscribeUids")?,
    };
    request.apply(ctx).await.map_err(|e| failure(&e))?;
    let answer =
        Started { cname: body.cname, uid: body.uid, resource_id: resource.to_owned(), sid: Some(sid.to_owned()) };
    Ok(json(StatusCode::OK, &answer))
}

/// The recording's status and file sets.
#[utoipa::path(get, path = "/v1/apps/{pid}/cloud_recording/resourceid/{resourceid}/sid/{sid}/mode/{mode}/query",
    params(("pid" = i64, Path, description = "project id"), ("resourceid" = String, Path), ("sid" = String, Path), ("mode" = String, Path)),
    responses((status = 200, body = Status), (status = 401), (status = 404, body = Failure)))]
async fn query(ctx: &CmdContext<'_>, resource: &str, sid: &str, mode: &str) -> Routed {
    mode_of(mode)?;
    check_pair(ctx, resource, sid).await?;
    let answer = QueryRecording { sid: sid.to_owned() }.apply(ctx).await.map_err(|e| failure(&e))?;
    let response = ServerResponse {
        file_list_mode: "json",
        file_list: answer.files.into_iter().map(FileEntry::from).collect(),
        status: Some(answer.status),
        slice_start_time: Some(answer.slice_start_time),
        uploading_status: Some(answer.upload_status),
    };
    Ok(json(
        StatusCode::OK,
        &Status { resource_id: resource.to_owned(), sid: sid.to_owned(), server_response: response },
    ))
}

/// Ends the recording once its files hold every message; answers them.
#[utoipa::path(post, path = "/v1/apps/{pid}/cloud_recording/resourceid/{resourceid}/sid/{sid}/mode/{mode}/stop",
    request_body = RecordingRequest,
    params(("pid" = i64, Path, description = "project id"), ("resourceid" = String, Path), ("sid" = String, Path), ("mode" = String, Path)),
    responses((status = 200, body = Status), (status = 400, description = "stopped already (code 49)", body = Failure),
        (status = 401), (status = 404, body = Failure)))]
async fn stop(ctx: &CmdContext<'_>, resource: &str, sid: &str, mode: &str) -> Routed {
    mode_of(mode)?;
    check_pair(ctx, resource, sid).await?;
    let answer = StopRecording { sid: sid.to_owned() }.apply(ctx).await.map_err(|e| failure(&e))?;
    let response = ServerResponse {
        file_list_mode: "json",
        file_list: answer.files.into_iter().map(FileEntry::from).collect(),
        status: None,
        slice_start_time: None,
        uploading_status: Some(answer.upload_status),
    };
    Ok(json(
        StatusCode::OK,
        &Status { resource_id: resource.to_owned(), sid: sid.to_owned(), server_response: response },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_json()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 5);
        assert!(
            paths.contains_key("/v1/apps/{pid}/cloud_recording/resourceid/{resourceid}/sid/{sid}/mode/{mode}/query")
        );
        assert!(doc["components"]["schemas"]["RecordingRequest"].is_object());
    }
}
