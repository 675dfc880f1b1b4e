//! Faults scripted with a fake server: answers out of order, answers that
//! never come or come late, a connection cut mid-call, server pushes,
//! keep-alive, room events and listening across reconnects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rtm_protocol::methods::{AddListen, Empty, PushEvent, RemoveListen, RoomMembers, SetListen};
use rtm_protocol::{write_answer, write_quest, Answer, Encoding, ErrorAnswer, ErrorCode, Frame, Quest};
use rtm_sdk::{
    ClientOptions, ConnectionEvent, ErrorKind, Lagged, ListenFilter, ListenState, Mode, Role, RoomEvent,
    RtmServerClient,
};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// Accepts connections and hands them to the test.
struct FakeServer {
    addr: std::net::SocketAddr,
    accepted: mpsc::Receiver<FakeConn>,
}

impl FakeServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, accepted) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if tx.send(FakeConn { stream, rbuf: BytesMut::new() }).await.is_err() {
                    return;
                }
            }
        });
        Self { addr, accepted }
    }

    fn options(&self) -> ClientOptions {
        ClientOptions::new(self.addr.to_string(), 1, "secret")
            .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(50))
    }

    async fn accept(&mut self) -> FakeConn {
        tokio::time::timeout(WAIT, self.accepted.recv()).await.expect("the client connects").unwrap()
    }
}

struct FakeConn {
    stream: TcpStream,
    rbuf: BytesMut,
}

impl FakeConn {
    async fn next_frame(&mut self) -> Option<Frame> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(frame) = Frame::decode(&mut self.rbuf, 1 << 20).unwrap() {
                    return Some(frame);
                }
                if self.stream.read_buf(&mut self.rbuf).await.unwrap_or(0) == 0 {
                    return None;
                }
            }
        })
        .await
        .expect("the client sent something")
    }

    async fn next_quest(&mut self) -> Quest {
        match self.next_frame().await {
            Some(Frame::Quest(q)) => q,
            other => panic!("expected a quest, got {other:?}"),
        }
    }

    async fn next_answer(&mut self) -> Answer {
        match self.next_frame().await {
            Some(Frame::Answer(a)) => a,
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    async fn answer<T: Serialize>(&mut self, seq: u32, payload: &T) {
        let mut out = BytesMut::new();
        write_answer(&mut out, 1, Encoding::MsgPack, seq, 0, payload).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    async fn answer_error(&mut self, seq: u32, code: ErrorCode, ex: &str) {
        let mut out = BytesMut::new();
        write_answer(&mut out, 1, Encoding::MsgPack, seq, 1, &ErrorAnswer::new(code, ex)).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    async fn push<T: Serialize>(&mut self, seq: Option<u32>, method: &str, payload: &T) {
        let mut out = BytesMut::new();
        write_quest(&mut out, Encoding::MsgPack, seq, method, payload).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }
}

/// The next quest, which must be `M`, and its parameters.
async fn expect_quest<M: rtm_protocol::methods::Method>(conn: &mut FakeConn) -> (u32, M) {
    let quest = conn.next_quest().await;
    assert_eq!(quest.method_str(), Some(M::NAME));
    (quest.seq.unwrap(), rtm_protocol::payload::decode(quest.encoding, &quest.payload).unwrap())
}

fn member_event(uid: i64, data: &str) -> PushEvent {
    PushEvent {
        pid: 1,
        event: RoomEvent::MEMBER_JOINED.into(),
        uid,
        time: 1_700_000_000,
        endpoint: "rtm-server".into(),
        data: data.into(),
    }
}

fn rid_of(quest: &Quest) -> i64 {
    #[derive(serde::Deserialize)]
    struct Rid {
        rid: i64,
    }
    rtm_protocol::payload::decode::<Rid>(quest.encoding, &quest.payload).unwrap().rid
}

fn recorder() -> (Arc<Mutex<Vec<ConnectionEvent>>>, impl Fn(&ConnectionEvent) + Send + Sync + 'static) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (events, move |e: &ConnectionEvent| sink.lock().unwrap().push(e.clone()))
}

#[tokio::test]
async fn answers_out_of_order_reach_their_calls() {
    let mut server = FakeServer::start().await;
    let client = RtmServerClient::connect(server.options()).await.unwrap();
    let mut conn = server.accept().await;
    let calls = tokio::spawn({
        let client = client.clone();
        async move { tokio::join!(client.get_room_members(1), client.get_room_members(2), client.get_room_members(3)) }
    });
    let mut quests = Vec::new();
    for _ in 0..3 {
        quests.push(conn.next_quest().await);
    }
    for quest in quests.iter().rev() {
        let rid = rid_of(quest);
        conn.answer(quest.seq.unwrap(), &RoomMembers { uids: vec![rid * 10] }).await;
    }
    let (a, b, c) = calls.await.unwrap();
    assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (vec![10], vec![20], vec![30]));
}

#[tokio::test]
async fn a_missing_answer_times_out_and_a_late_one_is_dropped() {
    let mut server = FakeServer::start().await;
    let client = RtmServerClient::connect(server.options()).await.unwrap();
    let mut conn = server.accept().await;
    let quick = client.with_timeout(Duration::from_millis(200));
    let call = tokio::spawn(async move { quick.get_room_members(1).await });
    let quest = conn.next_quest().await;
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.code(), rtm_sdk::codes::TIMEOUT);

    // The answer finally arrives: nothing breaks, and the next call works.
    conn.answer(quest.seq.unwrap(), &RoomMembers { uids: vec![99] }).await;
    let next = tokio::spawn({
        let client = client.clone();
        async move { client.get_room_members(2).await }
    });
    let quest = conn.next_quest().await;
    conn.answer(quest.seq.unwrap(), &RoomMembers { uids: vec![2] }).await;
    assert_eq!(next.await.unwrap().unwrap(), vec![2]);
}

#[tokio::test]
async fn a_cut_connection_fails_the_call_and_the_next_call_reconnects() {
    let mut server = FakeServer::start().await;
    let (events, on_event) = recorder();
    let client = RtmServerClient::connect(server.options().on_event(on_event)).await.unwrap();
    let mut conn = server.accept().await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.get_room_members(1).await }
    });
    conn.next_quest().await;
    drop(conn);
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");

    let next = tokio::spawn({
        let client = client.clone();
        async move { client.get_room_members(5).await }
    });
    let mut conn = server.accept().await;
    let quest = conn.next_quest().await;
    conn.answer(quest.seq.unwrap(), &RoomMembers { uids: vec![5] }).await;
    assert_eq!(next.await.unwrap().unwrap(), vec![5]);

    let events = events.lock().unwrap().clone();
    assert!(matches!(events[0], ConnectionEvent::Connected { reconnect: false, .. }), "{events:?}");
    assert!(matches!(events[1], ConnectionEvent::Disconnected { .. }), "{events:?}");
    assert!(matches!(events.last(), Some(ConnectionEvent::Connected { reconnect: true, .. })), "{events:?}");
}

#[tokio::test]
async fn calls_fail_while_the_server_is_down_and_recover_when_it_returns() {
    let mut server = FakeServer::start().await;
    let addr = server.addr;
    let (events, on_event) = recorder();
    let client = RtmServerClient::connect(server.options().on_event(on_event)).await.unwrap();
    let conn = server.accept().await;
    // Take the server down entirely.
    drop(server);
    drop(conn);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = client.get_room_members(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(events.lock().unwrap().iter().any(|e| matches!(e, ConnectionEvent::Reconnecting { .. })));

    // Bring it back on the same port: the client recovers by itself.
    let listener = TcpListener::bind(addr).await.unwrap();
    let serve = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = FakeConn { stream, rbuf: BytesMut::new() };
        let quest = conn.next_quest().await;
        conn.answer(quest.seq.unwrap(), &RoomMembers { uids: vec![7] }).await;
        conn
    });
    let mut result = None;
    for _ in 0..50 {
        match client.get_room_members(7).await {
            Ok(uids) => {
                result = Some(uids);
                break;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Connection);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert_eq!(result, Some(vec![7]));
    serve.await.unwrap();
}

#[tokio::test]
async fn without_auto_reconnect_later_calls_fail_at_once() {
    let mut server = FakeServer::start().await;
    let client = RtmServerClient::connect(server.options().auto_reconnect(false)).await.unwrap();
    drop(server.accept().await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = client.get_room_members(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.message().contains("auto-reconnect"), "{err}");
}

#[tokio::test]
async fn pushes_reach_their_handler_and_are_answered() {
    let mut server = FakeServer::start().await;
    let (tx, mut pushed) = mpsc::unbounded_channel();
    let options = server
        .options()
        .on_push("pushevent", move |quest| {
            #[derive(serde::Deserialize)]
            struct Event {
                event: String,
            }
            let event: Event = quest.decode().unwrap();
            tx.send((quest.is_twoway(), event.event)).unwrap();
        })
        .unwrap();
    let _client = RtmServerClient::connect(options).await.unwrap();
    let mut conn = server.accept().await;

    #[derive(Serialize)]
    struct Event<'a> {
        event: &'a str,
    }
    conn.push(Some(77), "pushevent", &Event { event: "room_created" }).await;
    assert_eq!(pushed.recv().await.unwrap(), (true, "room_created".to_string()));
    let answer = conn.next_answer().await;
    assert_eq!((answer.seq, answer.status, &answer.payload[..]), (77, 0, &[0x80][..]), "twoway pushes get {{}}");

    conn.push(None, "pushevent", &Event { event: "member_joined" }).await;
    assert_eq!(pushed.recv().await.unwrap(), (false, "member_joined".to_string()));

    conn.push(Some(78), "nohandler", &Event { event: "x" }).await;
    let answer = conn.next_answer().await;
    assert_eq!((answer.seq, answer.status), (78, 1));
    let err: ErrorAnswer = rtm_protocol::payload::decode(answer.encoding, &answer.payload).unwrap();
    assert_eq!(err.code, 20004);
}

#[tokio::test]
async fn keepalive_pings_and_an_unanswered_ping_drops_the_connection() {
    let mut server = FakeServer::start().await;
    let (events, on_event) = recorder();
    let options = server.options().keepalive(Some(Duration::from_millis(100))).on_event(on_event);
    let _client = RtmServerClient::connect(options).await.unwrap();
    let mut conn = server.accept().await;
    let ping = conn.next_quest().await;
    assert_eq!(ping.method_str(), Some("*ping"));
    conn.answer(ping.seq.unwrap(), &rtm_protocol::methods::PingAnswer { ts: 1 }).await;
    // Ignore the next ping: the client gives up on this connection and reconnects.
    let ping = conn.next_quest().await;
    assert_eq!(ping.method_str(), Some("*ping"));
    let mut second = server.accept().await;
    assert_eq!(second.next_quest().await.method_str(), Some("*ping"));
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, ConnectionEvent::Disconnected { reason } if reason.contains("keep-alive"))));
}

#[tokio::test]
async fn closing_fails_later_calls_and_emits_closed() {
    let mut server = FakeServer::start().await;
    let (events, on_event) = recorder();
    let client = RtmServerClient::connect(server.options().on_event(on_event)).await.unwrap();
    let mut conn = server.accept().await;
    let clone = client.clone();
    client.close().await;
    assert!(conn.next_frame().await.is_none(), "the connection is closed");
    let err = clone.get_room_members(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(events.lock().unwrap().last(), Some(ConnectionEvent::Closed)));
}

#[tokio::test]
async fn room_events_reach_the_callback_every_stream_and_a_raw_handler() {
    let mut server = FakeServer::start().await;
    let (to_callback, mut from_callback) = mpsc::unbounded_channel();
    let (to_raw, mut from_raw) = mpsc::unbounded_channel();
    let options = server
        .options()
        .on_room_event(move |event| to_callback.send(event).unwrap())
        .on_push("pushevent", move |quest| to_raw.send(quest.method().to_owned()).unwrap())
        .unwrap();
    let client = RtmServerClient::connect(options).await.unwrap();
    let mut conn = server.accept().await;
    let (mut first, mut second) = (client.room_events(), client.room_events());

    conn.push(None, "pushevent", &member_event(9, r#"{"rid":5,"role":"consumer","mode":3}"#)).await;
    let expected = RoomEvent {
        pid: 1,
        name: "member_joined".into(),
        uid: 9,
        time_ms: 1_700_000_000_000,
        endpoint: "rtm-server".into(),
        rid: 5,
        data: serde_json::json!({"rid": 5, "role": "consumer", "mode": 3}),
    };
    let from_stream = tokio::time::timeout(WAIT, first.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(from_stream, expected);
    assert_eq!((from_stream.role(), from_stream.mode()), (Some(Role::Consumer), Some(Mode::ReceiveOnly)));
    assert_eq!(tokio::time::timeout(WAIT, second.next()).await.unwrap().unwrap().unwrap(), expected);
    assert_eq!(tokio::time::timeout(WAIT, from_callback.recv()).await.unwrap().unwrap(), expected);
    assert_eq!(from_raw.recv().await.unwrap(), "pushevent");

    // A twoway pushevent is answered {} as any handled push.
    conn.push(Some(3), "pushevent", &member_event(10, r#"{"rid":6}"#)).await;
    let answer = conn.next_answer().await;
    assert_eq!((answer.seq, answer.status), (3, 0));
    assert_eq!(first.next().await.unwrap().unwrap().uid, 10);

    // The streams end with the client.
    client.close().await;
    assert_eq!(tokio::time::timeout(WAIT, second.next()).await.unwrap().map(|e| e.unwrap().uid), Some(10));
    assert!(tokio::time::timeout(WAIT, second.next()).await.unwrap().is_none());
    assert!(client.room_events().next().await.is_none(), "a stream taken after close ends at once");
}

#[tokio::test]
async fn a_stream_that_falls_behind_is_told_how_many_events_it_missed() {
    let mut server = FakeServer::start().await;
    let (to_callback, mut from_callback) = mpsc::unbounded_channel();
    let options =
        server.options().room_event_buffer(2).on_room_event(move |event| to_callback.send(event.uid).unwrap());
    let client = RtmServerClient::connect(options).await.unwrap();
    let mut conn = server.accept().await;
    let mut slow = client.room_events();
    for uid in 1..=5 {
        conn.push(None, "pushevent", &member_event(uid, r#"{"rid":1}"#)).await;
    }
    // The callback runs after the stream is fed: once it saw the last event, so did the stream.
    for uid in 1..=5 {
        assert_eq!(tokio::time::timeout(WAIT, from_callback.recv()).await.unwrap(), Some(uid));
    }
    assert_eq!(slow.next().await, Some(Err(Lagged { missed: 3 })));
    assert_eq!(slow.next().await.unwrap().unwrap().uid, 4);
    assert_eq!(slow.next().await.unwrap().unwrap().uid, 5);
}

#[tokio::test]
async fn listening_is_remembered_and_restored_first_after_a_reconnect() {
    let mut server = FakeServer::start().await;
    let client = RtmServerClient::connect(server.options()).await.unwrap();
    let mut conn = server.accept().await;

    let call = |change: &'static str| {
        let client = client.clone();
        tokio::spawn(async move {
            match change {
                "add" => {
                    let filter = ListenFilter::new().rooms([1, 2]).events([RoomEvent::MEMBER_JOINED]);
                    client.add_listen(&filter).await
                }
                "refused" => client.add_listen(&ListenFilter::new().events(["no_such_event"])).await,
                _ => client.remove_listen(&ListenFilter::new().rooms([1])).await,
            }
        })
    };
    let add = call("add");
    let (seq, request) = expect_quest::<AddListen>(&mut conn).await;
    assert_eq!((request.rids, request.uids), (Some(vec![1, 2]), None));
    assert_eq!(request.events, Some(vec!["member_joined".to_owned()]));
    conn.answer(seq, &Empty {}).await;
    add.await.unwrap().unwrap();

    // A refused call is not remembered.
    let refused = call("refused");
    let (seq, _) = expect_quest::<AddListen>(&mut conn).await;
    conn.answer_error(seq, ErrorCode::InvalidParameter, "unknown event").await;
    assert_eq!(refused.await.unwrap().unwrap_err().kind(), ErrorKind::Server);

    let remove = call("remove");
    let (seq, request) = expect_quest::<RemoveListen>(&mut conn).await;
    assert_eq!(request.rids, Some(vec![1]));
    conn.answer(seq, &Empty {}).await;
    remove.await.unwrap().unwrap();
    let expected =
        ListenState { rids: [2].into(), events: ["member_joined".to_owned()].into(), ..ListenState::default() };
    assert_eq!(client.listening(), expected);

    // Cut the connection: the first quest on the next one restores the state.
    drop(conn);
    let mut conn = server.accept().await;
    let (seq, request) = expect_quest::<SetListen>(&mut conn).await;
    assert_eq!((request.rids, request.uids), (Some(vec![2]), None));
    assert_eq!(request.events, Some(vec!["member_joined".to_owned()]));
    assert_eq!((request.room, request.ev), (Some(false), Some(false)));
    conn.answer(seq, &Empty {}).await;

    // Other calls follow as usual, and the state is unchanged.
    let next = tokio::spawn({
        let client = client.clone();
        async move { client.get_room_members(5).await }
    });
    let quest = conn.next_quest().await;
    assert_eq!(quest.method_str(), Some("getroommembers"));
    conn.answer(quest.seq.unwrap(), &RoomMembers { uids: vec![5] }).await;
    assert_eq!(next.await.unwrap().unwrap(), vec![5]);
    assert_eq!(client.listening(), expected);
}

#[tokio::test]
async fn a_set_listen_replaces_the_state_and_a_refused_restore_is_reported() {
    let mut server = FakeServer::start().await;
    let (events, on_event) = recorder();
    let client = RtmServerClient::connect(server.options().on_event(on_event)).await.unwrap();
    let mut conn = server.accept().await;
    let set = tokio::spawn({
        let client = client.clone();
        async move { client.set_listen(&ListenFilter::new().users([7, 7]), true, true).await }
    });
    let (seq, request) = expect_quest::<SetListen>(&mut conn).await;
    assert_eq!((request.rids, request.uids, request.events), (None, Some(vec![7]), None));
    assert_eq!((request.room, request.ev), (Some(true), Some(true)));
    conn.answer(seq, &Empty {}).await;
    set.await.unwrap().unwrap();
    assert_eq!(
        client.listening(),
        ListenState { uids: [7].into(), all_rooms: true, all_events: true, ..Default::default() }
    );

    drop(conn);
    let mut conn = server.accept().await;
    let (seq, request) = expect_quest::<SetListen>(&mut conn).await;
    assert_eq!((request.uids, request.room, request.ev), (Some(vec![7]), Some(true), Some(true)));
    conn.answer_error(seq, ErrorCode::InvalidParameter, "too many").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !events.lock().unwrap().iter().any(|e| matches!(e, ConnectionEvent::ListenRestoreFailed { .. })) {
        assert!(tokio::time::Instant::now() < deadline, "no ListenRestoreFailed event");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The remembered state stays: the next reconnect tries again.
    assert!(client.listening().all_rooms);
}

#[tokio::test]
async fn empty_add_and_remove_filters_are_refused_locally() {
    let mut server = FakeServer::start().await;
    let client = RtmServerClient::connect(server.options()).await.unwrap();
    let _conn = server.accept().await;
    assert_eq!(client.add_listen(&ListenFilter::new()).await.unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(client.remove_listen(&ListenFilter::new()).await.unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn the_blocking_client_iterates_room_events() {
    use std::sync::mpsc::RecvTimeoutError;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut server = runtime.block_on(FakeServer::start());
    let client = rtm_sdk::blocking::RtmServerClient::connect(server.options()).unwrap();
    let mut conn = runtime.block_on(server.accept());
    let mut events = client.room_events();
    assert_eq!(events.recv_timeout(Duration::from_millis(50)), Err(RecvTimeoutError::Timeout));

    runtime.block_on(conn.push(None, "pushevent", &member_event(4, r#"{"rid":8}"#)));
    let event = events.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!((event.name.as_str(), event.uid, event.rid), ("member_joined", 4, 8));
    runtime.block_on(conn.push(None, "pushevent", &member_event(5, r#"{"rid":8}"#)));
    assert_eq!(events.next().unwrap().unwrap().uid, 5);

    // Dropping the last client handle closes the connection and ends the iterator.
    drop(client);
    assert!(events.next().is_none());
    assert_eq!(events.recv_timeout(WAIT), Err(RecvTimeoutError::Disconnected));
}
