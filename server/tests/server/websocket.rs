//! The client gate over WebSocket, as the RTM WebSocket SDK speaks it: FPNN
//! frames in binary messages, cut and packed any way, on
//! `ws://<endpoint>/service/websocket`. Real server, real WebSocket client.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rtm_protocol::client::{self as c, Auth, AuthAnswer, MessageBody, PushRoomMsg};
use rtm_protocol::methods::*;
use rtm_protocol::{payload, write_answer, write_quest, Encoding, Frame, Quest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::client_gate::Player;
use crate::messaging::text;
use crate::support::*;

/// A browser-like player: FPNN over a WebSocket.
struct WsPlayer {
    ws: WebSocketStream<TcpStream>,
    rbuf: BytesMut,
    seq: u32,
    pushes: Vec<Quest>,
}

impl WsPlayer {
    async fn connect(server: &TestServer) -> Self {
        Self::connect_from(server, None).await.expect("the upgrade succeeds")
    }

    /// Connects with an `Origin` header; `Err(status)` if the upgrade is refused.
    async fn connect_from(server: &TestServer, origin: Option<&str>) -> Result<Self, u16> {
        let url = format!("ws://{}/service/websocket", server.ws_addr);
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", origin.parse().unwrap());
        }
        let tcp = TcpStream::connect(server.ws_addr).await.unwrap();
        match tokio_tungstenite::client_async(request, tcp).await {
            Ok((ws, _)) => Ok(Self { ws, rbuf: BytesMut::new(), seq: 0, pushes: Vec::new() }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("unexpected WebSocket error: {e}"),
        }
    }

    async fn login(server: &TestServer, uid: i64) -> Self {
        let token = server.client().await.call(&GetToken { uid, version: None }).await.unwrap().token;
        let mut player = Self::connect(server).await;
        let auth = Auth { pid: PID, uid, token, version: Some("js".into()), lang: None, attrs: None, device: None };
        assert_eq!(player.call(&auth).await, Ok(AuthAnswer { ok: true }));
        player
    }

    /// Sends a quest, its frame cut into two binary messages, and waits for
    /// its answer (keeping pushes).
    async fn call<M: Method>(&mut self, params: &M) -> Result<M::Answer, rtm_protocol::ErrorAnswer> {
        self.seq += 1;
        let seq = self.seq;
        let mut out = BytesMut::new();
        write_quest(&mut out, Encoding::MsgPack, Some(seq), M::NAME, params).unwrap();
        let tail = out.split_off(7);
        self.ws.send(Message::Binary(out.freeze())).await.unwrap();
        self.ws.send(Message::Binary(tail.freeze())).await.unwrap();
        loop {
            match self.frame().await.expect("an answer before the close") {
                Frame::Answer(answer) if answer.seq == seq => {
                    return match answer.status {
                        0 => Ok(payload::decode(answer.encoding, &answer.payload).unwrap()),
                        _ => Err(payload::decode(answer.encoding, &answer.payload).unwrap()),
                    };
                }
                Frame::Answer(other) => panic!("an answer to seq {} while waiting for {seq}", other.seq),
                Frame::Quest(push) => self.keep(push).await,
            }
        }
    }

    async fn keep(&mut self, push: Quest) {
        if let Some(seq) = push.seq {
            let mut out = BytesMut::new();
            write_answer(&mut out, push.version, push.encoding, seq, 0, &Empty {}).unwrap();
            let _ = self.ws.send(Message::Binary(out.freeze())).await;
        }
        self.pushes.push(push);
    }

    /// The next FPNN frame, from however many messages it takes.
    async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = Frame::decode(&mut self.rbuf, 1 << 20).unwrap() {
                return Some(frame);
            }
            match tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await.expect("traffic within 10 s") {
                Some(Ok(Message::Binary(bytes))) => self.rbuf.extend_from_slice(&bytes),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    async fn push(&mut self, method: &str) -> Quest {
        loop {
            if let Some(at) = self.pushes.iter().position(|p| &p.method[..] == method.as_bytes()) {
                return self.pushes.remove(at);
            }
            match self.frame().await {
                Some(Frame::Quest(push)) => self.keep(push).await,
                other => panic!("waiting for {method}, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn a_browser_session_is_a_client_session() {
    let server = TestServer::start().await;
    let mut web = WsPlayer::login(&server, 1).await;
    let mut tcp = Player::login(&server, 2).await;
    web.call(&c::EnterRoom { rid: 7 }).await.unwrap();
    tcp.call(&c::EnterRoom { rid: 7 }).await.unwrap();
    assert_eq!(web.call(&GetRoomMembers { rid: 7 }).await.unwrap().uids, vec![1, 2]);

    let sent = tcp.call(&text(7, 1, "to the browser")).await.unwrap();
    let push = web.push("pushroommsg").await;
    let push: PushRoomMsg = payload::decode(push.encoding, &push.payload).unwrap();
    assert_eq!((push.from, push.msg, push.mtime), (2, MessageBody::Text("to the browser".into()), sent.mtime));

    web.call(&text(7, 2, "from the browser")).await.unwrap();
    let push = tcp.push("pushroommsg").await;
    let push: PushRoomMsg = payload::decode(push.encoding, &push.payload).unwrap();
    assert_eq!((push.from, push.msg), (1, MessageBody::Text("from the browser".into())));

    // History and the rules are the gate's, whatever the transport.
    let page = c::GetRoomMsg { rid: 7, desc: true, num: 10, begin: 0, end: 0, lastid: 0, mtypes: None };
    assert_eq!(web.call(&page).await.unwrap().num, 2);
    let not_in = web.call(&text(8, 3, "x")).await.unwrap_err();
    assert_eq!(not_in.code, rtm_protocol::ErrorCode::NotInRoom.code());

    // Several frames packed into one message are all answered.
    let mut packed = BytesMut::new();
    for seq in [101, 102] {
        write_quest(&mut packed, Encoding::MsgPack, Some(seq), "getservertime", &c::GetServerTime {}).unwrap();
    }
    web.ws.send(Message::Binary(packed.freeze())).await.unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        if let Some(Frame::Answer(answer)) = web.frame().await {
            seqs.push(answer.seq);
        }
    }
    assert_eq!(seqs, vec![101, 102]);

    // WebSocket pings are answered.
    web.ws.send(Message::Ping(Bytes::from_static(b"hi"))).await.unwrap();
    let pong = loop {
        match web.ws.next().await.unwrap().unwrap() {
            Message::Pong(data) => break data,
            Message::Binary(bytes) => web.rbuf.extend_from_slice(&bytes),
            _ => {}
        }
    };
    assert_eq!(&pong[..], b"hi");

    // `bye` ends the session with a close.
    web.call(&c::Bye {}).await.unwrap();
    assert!(web.frame().await.is_none(), "closed after bye");
    server.stop().await;
}

#[tokio::test]
async fn before_login_and_for_bad_frames_the_rules_hold() {
    let server = TestServer::start().await;
    let mut web = WsPlayer::connect(&server).await;
    let err = web.call(&c::EnterRoom { rid: 7 }).await.unwrap_err();
    assert_eq!(err.code, rtm_protocol::ErrorCode::Unauthorized.code(), "{}", err.ex);
    web.ws.send(Message::Binary(Bytes::from_static(b"NOPE0000000000000000"))).await.unwrap();
    assert!(web.frame().await.is_none(), "a broken frame closes the session");
    let mut text_sender = WsPlayer::connect(&server).await;
    text_sender.ws.send(Message::text("hello")).await.unwrap();
    assert!(text_sender.frame().await.is_none(), "text messages are not FPNN");
    server.stop().await;
}

async fn http_request(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut response)).await.unwrap().unwrap();
    String::from_utf8_lossy(&response[..n]).into_owned()
}

#[tokio::test]
async fn plain_http_gets_a_clear_4xx_and_origins_are_checked() {
    let server =
        TestServer::start_with(|c| c.websocket.allowed_origins = vec!["https://chat.example.com".into()]).await;
    let plain = http_request(server.ws_addr, "GET /service/websocket HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");
    assert!(plain.contains("FPNN over WebSocket"), "{plain}");
    let elsewhere = http_request(server.ws_addr, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(elsewhere.starts_with("HTTP/1.1 404"), "{elsewhere}");
    assert_eq!(WsPlayer::connect_from(&server, Some("https://evil.example.com")).await.err(), Some(403));
    assert_eq!(WsPlayer::connect_from(&server, None).await.err(), Some(403), "no origin is not an allowed one");
    assert!(WsPlayer::connect_from(&server, Some("https://chat.example.com")).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn a_connection_that_never_upgrades_is_closed() {
    let server = TestServer::start_with(|c| c.websocket.handshake_timeout_secs = 1).await;
    let mut idle = TcpStream::connect(server.ws_addr).await.unwrap();
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut [0; 64])).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
    server.stop().await;
}

#[tokio::test]
async fn sessions_per_address_are_bounded() {
    let server = TestServer::start_with(|c| c.websocket.max_connections_per_ip = 2).await;
    let first = WsPlayer::connect(&server).await;
    let _second = WsPlayer::connect(&server).await;
    assert_eq!(WsPlayer::connect_from(&server, None).await.err(), Some(429));
    drop(first);
    // The slot frees once the first session has ended.
    let mut again = None;
    for _ in 0..50 {
        if let Ok(player) = WsPlayer::connect_from(&server, None).await {
            again = Some(player);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a slot is free again");
    server.stop().await;
}

#[tokio::test]
async fn wss_with_the_gates_certificate() {
    use rustls::pki_types::pem::PemObject;
    let pki = crate::tls::Pki::new();
    let server = TestServer::start_full(|c| pki.configure(c), false, true).await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let addr = server.wss_addr.unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap();
    let url = format!("wss://localhost:{}/service/websocket", addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    let mut out = BytesMut::new();
    write_quest(&mut out, Encoding::MsgPack, Some(1), "getservertime", &c::GetServerTime {}).unwrap();
    ws.send(Message::Binary(out.freeze())).await.unwrap();
    let mut rbuf = BytesMut::new();
    let answer = loop {
        if let Some(frame) = Frame::decode(&mut rbuf, 1 << 20).unwrap() {
            break frame;
        }
        if let Message::Binary(bytes) = ws.next().await.unwrap().unwrap() {
            rbuf.extend_from_slice(&bytes);
        }
    };
    let Frame::Answer(answer) = answer else { panic!("an answer") };
    // The client gate answered, over TLS and WebSocket: `auth` comes first.
    let error: rtm_protocol::ErrorAnswer = payload::decode(answer.encoding, &answer.payload).unwrap();
    assert_eq!((answer.seq, error.code), (1, rtm_protocol::ErrorCode::Unauthorized.code()), "{answer:?}");
    server.stop().await;
}

/// The close frame's code and reason, once the server closes.
async fn close_code(player: &mut WsPlayer) -> Option<(u16, String)> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), player.ws.next()).await.expect("a close within 10 s") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| (u16::from(f.code), f.reason.to_string())),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return None,
        }
    }
}

#[tokio::test]
async fn close_codes_say_why() {
    let server = TestServer::start_with(|c| c.sessions.auth_timeout_secs = 1).await;
    let mut silent = WsPlayer::connect(&server).await;
    assert_eq!(close_code(&mut silent).await, Some((4001, "no auth within the auth timeout".into())));
    let mut kicked = WsPlayer::login(&server, 5).await;
    server.client().await.call(&Kickout { uid: 5, ce: None }).await.unwrap();
    let push = kicked.push("kickout").await;
    assert!(push.seq.is_none(), "kickout is oneway");
    assert_eq!(close_code(&mut kicked).await, Some((4002, "kicked out".into())));
    let mut broken = WsPlayer::connect(&server).await;
    broken.ws.send(Message::Binary(Bytes::from_static(b"NOPE0000000000000000"))).await.unwrap();
    assert_eq!(close_code(&mut broken).await, Some((1002, "malformed FPNN frame".into())));
    server.stop().await;
}

#[tokio::test]
async fn the_server_pings_and_closes_a_peer_that_answers_nothing() {
    let server = TestServer::start_with(|c| c.websocket.ping_secs = 1).await;
    let mut player = WsPlayer::login(&server, 6).await;
    // Reading (so answering pings): the session stays, and the pings arrive.
    let mut pings = 0;
    let reading = tokio::time::Instant::now() + Duration::from_millis(2500);
    while let Ok(Some(message)) = tokio::time::timeout_at(reading, player.ws.next()).await {
        pings += i32::from(matches!(message, Ok(Message::Ping(_))));
    }
    assert!(pings >= 2, "a ping a second: {pings}");
    assert!(player.call(&c::GetServerTime {}).await.is_ok(), "still served");
    // Not reading: no pong goes back, and within two intervals or so the
    // server closes, saying why. Read raw bytes: a WebSocket client would
    // answer the queued pings first and write into a closed socket.
    let mut raw = Vec::new();
    let tcp = player.ws.get_mut();
    let _ = tokio::time::timeout(Duration::from_secs(6), tcp.read_to_end(&mut raw)).await;
    let close: Vec<u8> = [&[0x88, 20, 0x0f, 0xa4][..], b"no answer to pings"].concat();
    assert!(
        raw.windows(close.len()).any(|w| w == close.as_slice()),
        "a close frame with 4004 \"no answer to pings\", then the end: {raw:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_oversize_message_closes_only_its_session() {
    let server = TestServer::start_with(|c| c.gates.client.max_frame_len = 4096).await;
    let mut big = WsPlayer::login(&server, 1).await;
    let mut other = WsPlayer::login(&server, 2).await;
    big.ws.send(Message::Binary(Bytes::from(vec![0u8; 64 * 1024]))).await.unwrap();
    assert!(big.frame().await.is_none(), "a message past the frame cap ends the session");
    other.call(&c::EnterRoom { rid: 7 }).await.expect("the others go on");
    server.stop().await;
}

#[tokio::test]
async fn a_slow_browser_is_cut_off_while_the_others_get_everything() {
    let server = TestServer::start_with(|c| {
        c.limits.client_messages_per_second = 0;
        c.sessions.outbox_bytes = 65536;
    })
    .await;
    let mut slow = WsPlayer::login(&server, 1).await;
    slow.call(&c::EnterRoom { rid: 7 }).await.unwrap();
    let mut reader = WsPlayer::login(&server, 2).await;
    reader.call(&c::EnterRoom { rid: 7 }).await.unwrap();
    let mut sender = Player::login(&server, 3).await;
    sender.call(&c::EnterRoom { rid: 7 }).await.unwrap();
    // `slow` reads nothing while 32 MB go by (more than the sockets' buffers
    // hold); `reader` reads as they come.
    let big = "x".repeat(16_000);
    let reading = tokio::spawn(async move {
        let mut got = 0;
        while got < 2000 {
            reader.push("pushroommsg").await;
            got += 1;
        }
        got
    });
    for mid in 1..=2000 {
        sender.call(&text(7, mid, &big)).await.unwrap();
    }
    assert_eq!(reading.await.unwrap(), 2000, "the reader got every message");
    // The slow one was closed: what it can still read ends before the 2,000th.
    let mut seen = 0;
    while let Some(frame) = slow.frame().await {
        if matches!(frame, Frame::Quest(ref q) if &q.method[..] == b"pushroommsg") {
            seen += 1;
        }
    }
    assert!(seen < 2000, "the slow session was cut off ({seen} messages reached it)");
    server.stop().await;
}
