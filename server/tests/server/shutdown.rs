//! Graceful shutdown: stop accepting, answer what has arrived, then close.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtm_protocol::methods::*;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quests_in_flight_are_answered_during_shutdown() {
    let mut server = TestServer::start().await;
    let mut c = server.client().await;
    c.call(&AddRoomMember { rid: 1, uid: 0 }).await.unwrap();
    let mut out = BytesMut::new();
    let mut seqs = Vec::new();
    for uid in 1..=3000 {
        seqs.push(c.encode_signed(&mut out, &AddRoomMember { rid: 1, uid }));
    }
    c.send(&out).await;
    server.begin_shutdown();
    let (mut ok, mut stopping) = (0, 0);
    let mut expected = seqs.into_iter();
    while let Some(frame) = c.read_frame().await {
        let rtm_protocol::Frame::Answer(answer) = frame else { panic!("only answers") };
        assert_eq!(Some(answer.seq), expected.next(), "in order, none skipped");
        match decode_answer::<Empty>(&answer) {
            Ok(_) => {
                assert_eq!(stopping, 0, "once stopping, every later quest is refused");
                ok += 1;
            }
            Err(e) => {
                assert_eq!(e.code, 20014, "{}", e.ex);
                stopping += 1;
            }
        }
    }
    assert!(ok + stopping > 0, "the quests in flight were answered");
    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn the_listener_closes_at_once() {
    let mut server = TestServer::start().await;
    let addr = server.addr;
    let mut c = server.client().await;
    c.call(&AddRoomMember { rid: 1, uid: 0 }).await.unwrap();
    server.begin_shutdown();
    // The idle connection is closed...
    c.expect_closed().await;
    // ...and new connections are no longer served.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
        let mut late = Client::from_stream(stream);
        late.expect_closed().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_cut_at_the_drain_timeout() {
    let mut server = TestServer::start_with(|c| {
        c.server.drain_timeout_secs = 1;
        c.gates.server.max_pending_answers = 16;
    })
    .await;
    let _stalled = stall_with_unread_answers(server.client().await, 200_000).await;
    server.begin_shutdown();
    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}
