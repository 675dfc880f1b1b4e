//! Recordings uploaded to a real S3-compatible server: moto's (`pip install
//! 'moto[server]'`; `.ci/run` installs it), one per test, started here on
//! loopback with `python3 -m moto.server`. A
//! TCP proxy in front of it plays the endpoint going down and coming back.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rtm_protocol::client::MessageBody;
use rtm_protocol::methods::*;
use rtm_server::config::S3Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

const BUCKET: &str = "recordings";

/// A moto S3 server on a free loopback port, stopped when dropped.
struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Moto {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed, with moto: pip install 'moto[server]' (.ci/run installs it)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let moto = Self { child, addr };
        for _ in 0..300 {
            if http(addr, "PUT", &format!("/{BUCKET}")).await.is_some_and(|(status, _)| status == 200) {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("moto did not start on {addr}: is it installed? pip install 'moto[server]' (.ci/run installs it)");
    }

    /// The keys in the bucket.
    async fn keys(&self) -> Vec<String> {
        let (_, body) = http(self.addr, "GET", &format!("/{BUCKET}?list-type=2")).await.unwrap();
        let mut keys: Vec<String> =
            body.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()).map(str::to_owned).collect();
        keys.sort();
        keys
    }

    /// An object's content, read with credentials (objects are private).
    async fn object(&self, key: &str) -> String {
        use object_store::ObjectStore;
        let bytes = self.store().get(&object_store::path::Path::from(key)).await.unwrap().bytes().await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Puts an object into the bucket.
    async fn put(&self, key: &str, content: &str) {
        use object_store::ObjectStore;
        let payload = object_store::PutPayload::from(content.as_bytes().to_vec());
        self.store().put(&object_store::path::Path::from(key), payload).await.unwrap();
    }

    fn store(&self) -> object_store::aws::AmazonS3 {
        let _ = rustls::crypto::ring::default_provider().install_default();
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(format!("http://{}", self.addr))
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_allow_http(true)
            .build()
            .unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare HTTP/1.1 request: `(status, body)`, or `None` if nothing answers.
async fn http(addr: SocketAddr, method: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(ANSWER_TIMEOUT, stream.read_to_end(&mut response)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}

/// Forwards connections to `target` while up; while down, cuts every
/// connection and refuses new ones (closes them at once).
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(generation);
        let (accept_up, accept_generation) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                if !accept_up.load(Ordering::SeqCst) {
                    continue; // dropped: the endpoint is down
                }
                let mut cut = accept_generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, up, generation }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn bucket_at(endpoint: SocketAddr) -> S3Config {
    S3Config {
        endpoint: format!("http://{endpoint}"),
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
    }
}

async fn s3_server(endpoint: SocketAddr, dir: &std::path::Path) -> TestServer {
    s3_server_with(endpoint, dir, |_| {}).await
}

async fn s3_server_with(
    endpoint: SocketAddr,
    dir: &std::path::Path,
    also: impl FnOnce(&mut rtm_server::config::Config) + Send + 'static,
) -> TestServer {
    let recordings = dir.display().to_string();
    TestServer::start_with(move |c| {
        c.projects[0].recording_s3 = Some(bucket_at(endpoint));
        c.recording.dir = recordings;
        c.recording.poll_ms = 10;
        c.recording.requests_per_second = 10_000;
        also(c);
    })
    .await
}

async fn record_three(backend: &mut Client, rid: i64) -> String {
    backend.call(&AddRoomMember { rid, uid: 1 }).await.unwrap();
    let resource_id = backend.call(&AcquireRecording { rid }).await.unwrap().resource_id;
    let start = StartRecording {
        resource_id,
        rid,
        mode: "mix".into(),
        storage: Some("s3".into()),
        ..StartRecording::default()
    };
    let sid = backend.call(&start).await.unwrap().sid;
    for mid in 1..=3 {
        let send = SendRoomMsg {
            mtype: 51,
            from: 1,
            rid,
            mid,
            msg: MessageBody::Text(format!("m{mid}")),
            attrs: String::new(),
        };
        backend.call(&send).await.unwrap();
    }
    sid
}

async fn wait_uploaded(backend: &mut Client, sid: &str, within: Duration) -> RecordingStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        let status = backend.call(&QueryRecording { sid: sid.into() }).await.unwrap();
        if status.upload_status == "uploaded" {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "not uploaded within {within:?}: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The manifest's key and its slices' keys, read back from the bucket.
async fn expected_keys(moto: &Moto, manifest: &str) -> Vec<String> {
    let body: serde_json::Value = serde_json::from_str(&moto.object(manifest).await).unwrap();
    assert_eq!(body["complete"], true);
    let mut keys: Vec<String> =
        body["slices"].as_array().unwrap().iter().map(|s| s["file"].as_str().unwrap().to_owned()).collect();
    keys.push(manifest.to_owned());
    keys.sort();
    keys
}

#[tokio::test]
async fn an_ended_recording_is_uploaded_and_the_bucket_matches_its_files() {
    let moto = Moto::start().await;
    let dir = std::env::temp_dir().join(format!("rtm-recording-s3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = s3_server(moto.addr, &dir).await;
    let mut backend = server.client().await;
    // A project without a bucket cannot ask for one.
    let mut other = server.client_for(OTHER_PID, OTHER_SECRET).await;
    let resource_id = other.call(&AcquireRecording { rid: 1 }).await.unwrap().resource_id;
    let refused = other
        .call(&StartRecording {
            resource_id,
            rid: 1,
            mode: "mix".into(),
            storage: Some("s3".into()),
            ..StartRecording::default()
        })
        .await;
    assert_eq!(refused.unwrap_err().code, rtm_protocol::ErrorCode::InvalidParameter.code());

    let sid = record_three(&mut backend, 60).await;
    // The stop waits (recording.stop_upload_wait_ms, 2 s) for the bucket to take the files.
    let stopped = backend.call(&StopRecording { sid: sid.clone() }).await.unwrap();
    assert_eq!(stopped.upload_status, "uploaded", "{stopped:?}");
    let manifest = &stopped.files[0].filename;
    let expected = expected_keys(&moto, manifest).await;
    assert_eq!(moto.keys().await, expected, "the bucket holds the manifest and its slices, nothing else");
    let first_slice = &expected.iter().find(|k| k.ends_with(".jsonl")).unwrap();
    let lines: Vec<serde_json::Value> =
        moto.object(first_slice).await.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|l| l["msg"].as_str().unwrap()).collect::<Vec<_>>(), vec!["m1", "m2", "m3"]);
    for key in &expected {
        assert!(!dir.join(key).exists(), "{key} is deleted locally once uploaded");
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn uploads_wait_locally_while_the_endpoint_is_down_then_go_up() {
    let moto = Moto::start().await;
    let proxy = Proxy::start(moto.addr).await;
    let dir = std::env::temp_dir().join(format!("rtm-recording-s3-down-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Another project's bucket is up: its uploads go on meanwhile.
    let direct = moto.addr;
    let server = s3_server_with(proxy.addr, &dir, move |c| c.projects[1].recording_s3 = Some(bucket_at(direct))).await;
    let mut backend = server.client().await;
    let mut other = server.client_for(OTHER_PID, OTHER_SECRET).await;
    let sid = record_three(&mut backend, 61).await;

    proxy.down();
    let stopped = backend.call(&StopRecording { sid: sid.clone() }).await.unwrap();
    assert_eq!(stopped.upload_status, "backuped");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = backend.call(&QueryRecording { sid: sid.clone() }).await.unwrap();
    assert_eq!(status.upload_status, "backuped", "still waiting while the endpoint is down");
    let manifest = &stopped.files[0].filename;
    assert!(dir.join(manifest).exists(), "kept locally until the store confirms it");
    assert!(moto.keys().await.is_empty());
    let other_sid = record_three(&mut other, 62).await;
    let other_stopped = other.call(&StopRecording { sid: other_sid }).await.unwrap();
    assert_eq!(other_stopped.upload_status, "uploaded", "a project whose bucket is up is not held up");
    let other_keys = expected_keys(&moto, &other_stopped.files[0].filename).await;
    assert_eq!(moto.keys().await, other_keys);

    proxy.up();
    let status = wait_uploaded(&mut backend, &sid, Duration::from_secs(40)).await;
    let mut all = expected_keys(&moto, &status.files[0].filename).await;
    all.extend(other_keys);
    all.sort();
    assert_eq!(moto.keys().await, all);
    assert!(!dir.join(manifest).exists());
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn slices_go_up_while_the_recording_runs() {
    let moto = Moto::start().await;
    let dir = std::env::temp_dir().join(format!("rtm-recording-s3-slices-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A slice holds about two of the long lines; progress is saved every 20 ms.
    let server = s3_server_with(moto.addr, &dir, |c| {
        c.recording.slice_bytes = 1024;
        c.recording.sync_ms = 20;
    })
    .await;
    let mut backend = server.client().await;
    let sid = record_three(&mut backend, 63).await;
    for mid in 4..=12 {
        let msg = MessageBody::Text(format!("m{mid} {}", "x".repeat(500)));
        backend.call(&SendRoomMsg { mtype: 51, from: 1, rid: 63, mid, msg, attrs: String::new() }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Running still: every slice but the one being written reaches the bucket.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let early = loop {
        let keys = moto.keys().await;
        if keys.len() >= 3 {
            break keys;
        }
        assert!(std::time::Instant::now() < deadline, "no slice went up while recording: {keys:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(early.iter().all(|k| k.ends_with(".jsonl")), "only finished slices, no manifest yet: {early:?}");
    for key in &early {
        assert!(!dir.join(key).exists(), "{key} is deleted locally once uploaded");
    }
    let status = backend.call(&QueryRecording { sid: sid.clone() }).await.unwrap();
    assert_eq!((status.status, status.upload_status.as_str()), (5, "backuped"));

    let stopped = backend.call(&StopRecording { sid }).await.unwrap();
    assert_eq!(stopped.upload_status, "uploaded");
    let expected = expected_keys(&moto, &stopped.files[0].filename).await;
    assert_eq!(moto.keys().await, expected);
    // The slices, read back in order, hold every message once.
    let mut said = Vec::new();
    for key in expected.iter().filter(|k| k.ends_with(".jsonl")) {
        for line in moto.object(key).await.lines() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            said.push(line["msg"].as_str().unwrap().split(' ').next().unwrap().to_owned());
        }
    }
    assert_eq!(said, (1..=12).map(|m| format!("m{m}")).collect::<Vec<_>>());
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The texts of room `rid`'s history once it holds `count` messages.
async fn history_texts(backend: &mut Client, rid: i64, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let get = GetRoomMsg { uid: 0, rid, desc: false, num: 20, begin: 0, end: 0, lastid: 0, mtypes: None };
        let rows = backend.call(&get).await.unwrap().msgs;
        if rows.len() >= count {
            return rows
                .iter()
                .map(|m| match &m.msg {
                    MessageBody::Text(text) => text.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
        }
        assert!(std::time::Instant::now() < deadline, "room {rid} holds {} of {count} messages", rows.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn recordings_and_prepared_files_play_back_from_the_bucket() {
    let moto = Moto::start().await;
    let dir = std::env::temp_dir().join(format!("rtm-recording-s3-play-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = s3_server(moto.addr, &dir).await;
    let mut backend = server.client().await;
    let sid = record_three(&mut backend, 64).await;
    let stopped = backend.call(&StopRecording { sid }).await.unwrap();
    assert_eq!(stopped.upload_status, "uploaded");
    let manifest = stopped.files[0].filename.clone();
    assert!(!dir.join(&manifest).exists(), "only the bucket has it now");

    // A recording, by the manifest's key.
    let play = |rid, files: &str| StartPlayback {
        rid,
        files: files.into(),
        speed: Some(0.0),
        storage: Some("s3".into()),
        ..StartPlayback::default()
    };
    backend.call(&play(65, &manifest)).await.unwrap();
    assert_eq!(history_texts(&mut backend, 65, 3).await, vec!["m1", "m2", "m3"]);
    // A prepared file put into the bucket (named with or without the `<pid>/`).
    moto.put(&format!("{PID}/scripts/hello.jsonl"), "{\"from\":7,\"msg\":\"hello\"}\n{\"from\":7,\"msg\":\"bye\"}\n")
        .await;
    backend.call(&play(66, "scripts/hello.jsonl")).await.unwrap();
    assert_eq!(history_texts(&mut backend, 66, 2).await, vec!["hello", "bye"]);

    let missing = backend.call(&play(67, "scripts/none.jsonl")).await.unwrap_err();
    assert_eq!(missing.code, rtm_protocol::ErrorCode::InvalidParameter.code());
    assert!(missing.ex.contains("bucket"), "{}", missing.ex);
    let escape = backend.call(&play(67, "../2000/x.jsonl")).await.unwrap_err();
    assert_eq!(escape.code, rtm_protocol::ErrorCode::InvalidParameter.code());
    let mut other = server.client_for(OTHER_PID, OTHER_SECRET).await;
    let no_bucket = other.call(&play(67, &manifest)).await.unwrap_err();
    assert_eq!(no_bucket.code, rtm_protocol::ErrorCode::InvalidParameter.code());
    assert!(no_bucket.ex.contains("no recording_s3"), "{}", no_bucket.ex);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
