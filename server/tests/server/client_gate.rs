//! The client gate over real TCP: tokens, login, sessions, client room
//! methods, kickouts, pings and the relogin grace.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use rtm_protocol::client::{self as c, Auth, AuthAnswer};
use rtm_protocol::methods::*;
use rtm_protocol::{payload, write_answer, write_quest, Encoding, ErrorAnswer, Frame, Quest};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::*;

/// A raw client-gate connection, as the RTM client SDKs speak it: pushes
/// from the gate are answered `{}` (if twoway) and kept for the test.
pub struct Player {
    stream: TcpStream,
    rbuf: BytesMut,
    seq: u32,
    pub pushes: VecDeque<Quest>,
}

impl Player {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self { stream, rbuf: BytesMut::new(), seq: 0, pushes: VecDeque::new() }
    }

    /// Connects and logs in with a fresh token from the server API.
    pub async fn login(server: &TestServer, uid: i64) -> Self {
        let token = server.client().await.call(&GetToken { uid, version: None }).await.unwrap().token;
        let mut player = Self::connect(server.client_addr).await;
        let auth = Auth { pid: PID, uid, token, version: None, lang: None, attrs: None, device: None };
        assert_eq!(player.call(&auth).await, Ok(AuthAnswer { ok: true }));
        player
    }

    /// Sends a quest and waits for its answer, keeping pushes that arrive meanwhile.
    pub async fn call<M: Method>(&mut self, params: &M) -> Result<M::Answer, ErrorAnswer> {
        self.call_raw(M::NAME, params).await.map(|bytes| payload::decode(Encoding::MsgPack, &bytes).unwrap())
    }

    pub async fn call_raw<T: Serialize + ?Sized>(&mut self, method: &str, params: &T) -> Result<Vec<u8>, ErrorAnswer> {
        self.seq += 1;
        let seq = self.seq;
        let mut out = BytesMut::new();
        write_quest(&mut out, Encoding::MsgPack, Some(seq), method, params).unwrap();
        self.stream.write_all(&out).await.unwrap();
        loop {
            match self.next_frame().await.expect("the gate answers before closing") {
                Frame::Answer(answer) if answer.seq == seq => {
                    return match answer.status {
                        0 => Ok(answer.payload.to_vec()),
                        _ => Err(payload::decode(answer.encoding, &answer.payload).unwrap()),
                    }
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
            // Best effort: the gate may have closed the connection already.
            let _ = self.stream.write_all(&out).await;
        }
        self.pushes.push_back(push);
    }

    async fn next_frame(&mut self) -> Option<Frame> {
        read_frame(&mut self.stream, &mut self.rbuf).await
    }

    /// The next push named `method` (answering and skipping others, such as pings).
    pub async fn push(&mut self, method: &str) -> Quest {
        loop {
            if let Some(at) = self.pushes.iter().position(|p| &p.method[..] == method.as_bytes()) {
                return self.pushes.remove(at).unwrap();
            }
            match self.next_frame().await {
                Some(Frame::Quest(push)) => self.keep(push).await,
                other => panic!("waiting for {method}, got {other:?}"),
            }
        }
    }

    /// Waits until the gate closes the connection; returns the pushes
    /// received before (answered, in order).
    pub async fn closed(&mut self) -> Vec<String> {
        while let Some(frame) = self.next_frame().await {
            if let Frame::Quest(push) = frame {
                self.keep(push).await;
            }
        }
        self.pushes.drain(..).map(|p| String::from_utf8_lossy(&p.method).into_owned()).collect()
    }
}

fn auth(uid: i64, token: &str) -> Auth {
    Auth { pid: PID, uid, token: token.into(), version: Some("test".into()), lang: None, attrs: None, device: None }
}

#[tokio::test]
async fn tokens_log_in_and_bad_ones_answer_ok_false() {
    let server = TestServer::start().await;
    let mut api = server.client().await;
    let token = api.call(&GetToken { uid: 7, version: Some("PYTHON-2.2.6".into()) }).await.unwrap().token;
    let mut player = Player::connect(server.client_addr).await;
    assert_eq!(player.call(&c::GetUserRooms {}).await.unwrap_err().code, 200022, "nothing before auth");
    assert_eq!(player.call(&auth(8, &token)).await, Ok(AuthAnswer { ok: false }), "another user's token");
    let mut forged = token.clone();
    forged.replace_range(10..11, if &token[10..11] == "A" { "B" } else { "A" });
    assert_eq!(player.call(&auth(7, &forged)).await, Ok(AuthAnswer { ok: false }), "an altered token");
    assert_eq!(player.call(&auth(7, &token)).await, Ok(AuthAnswer { ok: true }));
    assert_eq!(player.call(&auth(7, &token)).await.unwrap_err().code, 200023, "a second auth");
    assert!(player.call(&c::GetServerTime {}).await.unwrap().mts > 0);
    // The token is reusable (a relogin) until removed.
    let mut again = Player::connect(server.client_addr).await;
    assert_eq!(again.call(&auth(7, &token)).await, Ok(AuthAnswer { ok: true }));
    api.call(&RemoveToken { uid: 7 }).await.unwrap();
    let mut after = Player::connect(server.client_addr).await;
    assert_eq!(after.call(&auth(7, &token)).await, Ok(AuthAnswer { ok: false }), "removed");
    let fresh = api.call(&GetToken { uid: 7, version: None }).await.unwrap().token;
    assert_eq!(after.call(&auth(7, &fresh)).await, Ok(AuthAnswer { ok: true }), "a token issued after the removal");
    assert!(player.call(&c::GetServerTime {}).await.is_ok(), "sessions already logged in stay");
    server.stop().await;
}

#[tokio::test]
async fn blocked_users_are_denied_and_kicked() {
    let server = TestServer::start().await;
    let mut api = server.client().await;
    let mut player = Player::login(&server, 5).await;
    let token = api.call(&GetToken { uid: 5, version: None }).await.unwrap().token;
    api.call(&AddProjectBlack { uid: 5, btime: 0 }).await.unwrap();
    assert_eq!(player.closed().await.last().map(String::as_str), Some("kickout"), "kicked at once");
    let mut again = Player::connect(server.client_addr).await;
    assert_eq!(again.call(&auth(5, &token)).await.unwrap_err().code, 200024);
    server.stop().await;
}

#[tokio::test]
async fn kickout_and_bye_end_sessions() {
    let server = TestServer::start().await;
    let mut api = server.client().await;
    let (mut first, mut second) = (Player::login(&server, 1).await, Player::login(&server, 1).await);
    api.call(&Kickout { uid: 1, ce: None }).await.unwrap();
    assert_eq!(first.closed().await, vec!["kickout"]);
    assert_eq!(second.closed().await, vec!["kickout"], "every session of the user");
    let mut leaving = Player::login(&server, 2).await;
    assert_eq!(leaving.call(&c::Bye {}).await, Ok(Empty {}));
    assert!(leaving.closed().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn single_login_kicks_the_older_session() {
    let server = TestServer::start_with(|c| c.sessions.multi_login = rtm_server::config::MultiLogin::Single).await;
    let mut first = Player::login(&server, 3).await;
    let mut second = Player::login(&server, 3).await;
    assert_eq!(first.closed().await, vec!["kickout"]);
    assert!(second.call(&c::GetServerTime {}).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn no_login_in_time_closes_and_logged_in_clients_are_pinged() {
    let server = TestServer::start_with(|c| {
        c.sessions.auth_timeout_secs = 1;
        c.sessions.ping_interval_secs = 1;
        c.gates.client.idle_timeout_secs = 3;
    })
    .await;
    let mut silent = Player::connect(server.client_addr).await;
    let started = std::time::Instant::now();
    assert!(silent.closed().await.is_empty());
    assert!(started.elapsed() < Duration::from_secs(3), "closed by the auth timeout, not the idle timeout");
    let mut player = Player::login(&server, 4).await;
    // Answering pings (Player does) keeps a quiet client open past the idle timeout.
    for _ in 0..4 {
        player.push("ping").await;
    }
    assert!(player.call(&c::GetServerTime {}).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn client_rooms_are_the_server_api_rooms() {
    let server = TestServer::start_with(|c| c.limits.max_rooms_per_user = 2).await;
    let mut api = server.client().await;
    let mut player = Player::login(&server, 10).await;
    player.call(&c::EnterRoom { rid: 1 }).await.unwrap();
    api.call(&AddRoomMember { rid: 1, uid: 11 }).await.unwrap();
    assert_eq!(player.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, vec![10, 11]);
    assert_eq!(api.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, vec![10, 11], "one membership");
    player.call(&c::EnterRooms { rids: vec![2] }).await.unwrap();
    assert_eq!(player.call(&c::EnterRoom { rid: 3 }).await.unwrap_err().code, 200047, "the room limit");
    assert_eq!(player.call(&c::GetUserRooms {}).await.unwrap().rooms, vec![1, 2]);
    let counts = player.call(&GetRoomCount::new(vec![1, 2])).await.unwrap();
    assert_eq!(counts.cn, vec![(1, 2), (2, 1)]);
    let info = SetRoomInfo { rid: 1, oinfo: Some("open".into()), pinfo: Some("secret".into()) };
    player.call(&info).await.unwrap();
    let outsider_info = SetRoomInfo { rid: 9, oinfo: Some("x".into()), pinfo: None };
    assert_eq!(player.call(&outsider_info).await.unwrap_err().code, 200040, "members only");
    assert_eq!(player.call(&c::GetRoomOpenInfo { rid: 1 }).await.unwrap().oinfo, "open");
    assert_eq!(player.call(&c::GetRoomsOpenInfo { rids: vec![1, 2] }).await.unwrap().info["1"], "open");
    let mut outsider = Player::login(&server, 12).await;
    let seen = outsider.call(&GetRoomInfo { rid: 1 }).await.unwrap();
    assert_eq!((seen.oinfo.as_str(), seen.pinfo.as_str()), ("open", ""), "private info is for members");
    // Leaving by oneself: no kickoutroom; being removed: kickoutroom.
    player.call(&c::LeaveRoom { rid: 2 }).await.unwrap();
    api.call(&DelRoomMember { rid: 1, uid: 10 }).await.unwrap();
    let kicked = player.push("kickoutroom").await;
    let rid: c::KickoutRoom = payload::decode(kicked.encoding, &kicked.payload).unwrap();
    assert_eq!(rid.rid, 1);
    assert!(kicked.seq.is_none(), "kickoutroom is oneway");
    assert!(player.pushes.iter().all(|p| &p.method[..] != b"kickoutroom"), "none for the room left by itself");
    assert!(player.call(&c::GetUserRooms {}).await.unwrap().rooms.is_empty());
    // A released room tells its members too.
    player.call(&c::EnterRoom { rid: 5 }).await.unwrap();
    api.call(&DeleteRoom { rid: 5 }).await.unwrap();
    assert_eq!(player.push("kickoutroom").await.method.as_ref(), b"kickoutroom");
    server.stop().await;
}

#[tokio::test]
async fn rooms_outlive_a_relogin_inside_the_grace_only() {
    let server = TestServer::start_with(|c| c.sessions.relogin_grace_secs = 1).await;
    let mut api = server.client().await;
    let mut player = Player::login(&server, 20).await;
    player.call(&c::EnterRoom { rid: 1 }).await.unwrap();
    api.call(&AddRoomMember { rid: 2, uid: 20 }).await.unwrap(); // the backend's, not the client's
    drop(player);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let player = Player::login(&server, 20).await; // an automatic relogin
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(api.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, vec![20], "kept across the relogin");
    drop(player);
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    assert!(api.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids.is_empty(), "left after the grace");
    assert_eq!(api.call(&GetRoomMembers { rid: 2 }).await.unwrap().uids, vec![20], "server-API memberships stay");
    server.stop().await;
}

#[tokio::test]
async fn listeners_see_logins_and_logouts_in_seconds() {
    let server = TestServer::start().await;
    let mut listener = server.client().await;
    let events = Some(vec!["login".to_owned(), "logout".to_owned()]);
    listener.call(&AddListen { uids: Some(vec![30]), events, ..AddListen::default() }).await.unwrap();
    let player = Player::login(&server, 30).await;
    drop(player);
    for expected in ["login", "logout"] {
        let Some(Frame::Quest(quest)) = listener.read_frame().await else { panic!("no event") };
        let event: PushEvent = payload::decode(quest.encoding, &quest.payload).unwrap();
        assert_eq!((event.event.as_str(), event.uid), (expected, 30));
        assert!((event.time - now_secs()).abs() <= 2, "seconds, not milliseconds: {}", event.time);
        assert!(event.endpoint.starts_with("127.0.0.1:"), "{}", event.endpoint);
    }
    server.stop().await;
}
