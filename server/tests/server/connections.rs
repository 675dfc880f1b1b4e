//! Pipelining, concurrency, and the limits that protect the server.

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use rtm_protocol::methods::*;
use rtm_protocol::Encoding;
use tokio::io::AsyncWriteExt;

use crate::support::*;

#[tokio::test]
async fn a_thousand_pipelined_quests_are_answered_in_order() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let mut out = BytesMut::new();
    let mut seqs = Vec::new();
    for uid in 0..500 {
        seqs.push(c.encode_signed(&mut out, &AddRoomMember { rid: 42, uid }));
        seqs.push(c.encode_signed(&mut out, &GetRoomCount::new(vec![42])));
    }
    c.send(&out).await;
    for (i, seq) in seqs.into_iter().enumerate() {
        let answer = c.read_answer().await;
        assert_eq!(answer.seq, seq, "answer {i} is in order");
        if i % 2 == 1 {
            // Each count sees every add before it on this connection.
            let counts = decode_answer::<RoomCounts>(&answer).unwrap();
            assert_eq!(counts.cn, vec![(42, (i / 2 + 1) as i32)]);
        } else {
            decode_answer::<Empty>(&answer).unwrap();
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_connections() {
    let server = TestServer::start().await;
    let mut tasks = Vec::new();
    for n in 0..200i64 {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, PID, SECRET).await;
            for uid in 0..10 {
                c.call(&AddRoomMember { rid: n % 10, uid: n * 100 + uid }).await.unwrap();
            }
            c.call(&AddRoomMember { rid: 1_000, uid: n }).await.unwrap();
            c
        }));
    }
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    let c = &mut clients[0];
    let counts = c.call(&GetRoomCount::new((0..10).chain([1_000]).collect())).await.unwrap().to_map();
    for rid in 0..10 {
        assert_eq!(counts[&rid], 200, "room {rid}");
    }
    assert_eq!(counts[&1_000], 200);
    server.stop().await;
}

#[tokio::test]
async fn a_malformed_frame_closes_only_its_own_connection() {
    let server = TestServer::start().await;
    let mut good = server.client().await;
    good.call(&AddRoomMember { rid: 1, uid: 1 }).await.unwrap();

    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"FPNN\x01\xc0\x01\x01\x01\x00\x00\x00\x01\x00\x00\x00m\x80",
        b"FPNN\x01\x80\x03\x01\x01\x00\x00\x00\x01\x00\x00\x00m\x80",
        b"FPNN\x01\x80\x01\x00\x01\x00\x00\x00\x01\x00\x00\x00\x80",
    ] {
        let mut bad = server.client().await;
        // A valid quest first: it is still answered before the close.
        let answer = bad.call_raw("*ping", &Empty {}).await;
        assert_eq!(answer.status, 0);
        bad.send(garbage).await;
        bad.expect_closed().await;
        good.call(&AddRoomMember { rid: 1, uid: 2 }).await.unwrap();
    }
    assert_eq!(good.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, vec![1, 2]);
    server.stop().await;
}

#[tokio::test]
async fn an_oversize_frame_is_refused_before_its_body() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    // Announce 9 MiB and send none of it: the server must not wait for it.
    let mut header = BytesMut::new();
    header.put_slice(b"FPNN\x01\x80\x01\x0d");
    header.put_u32_le(9 * 1024 * 1024);
    c.send(&header).await;
    let started = Instant::now();
    c.expect_closed().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    // The configured maximum applies.
    let small = TestServer::start_with(|c| c.gates.server.max_frame_len = 4096).await;
    let mut c = small.client().await;
    let answer = c.call_raw("*ping", &Empty {}).await;
    assert_eq!(answer.status, 0);
    let mut out = BytesMut::new();
    let big = "x".repeat(5000);
    c.encode_raw(&mut out, Encoding::MsgPack, "setroominfo", &serde_json::json!({ "oinfo": big }));
    c.send(&out).await;
    c.expect_closed().await;
    server.stop().await;
    small.stop().await;
}

#[tokio::test]
async fn connections_past_the_maximum_are_closed_and_the_server_lives_on() {
    let server = TestServer::start_with(|c| c.gates.server.max_connections = 2).await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.call(&AddRoomMember { rid: 1, uid: 1 }).await.unwrap();
    b.call(&AddRoomMember { rid: 1, uid: 2 }).await.unwrap();
    let mut refused = server.client().await;
    refused.expect_closed().await;
    drop(a);
    // Once a slot frees up, new connections are served again.
    let mut c = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut candidate = server.client().await;
        let mut out = BytesMut::new();
        candidate.encode_raw(&mut out, Encoding::MsgPack, "*ping", &Empty {});
        let _ = candidate.stream.write_all(&out).await;
        if candidate.read_frame().await.is_some() {
            c = Some(candidate);
            break;
        }
    }
    let mut c = c.expect("a freed slot is reused");
    assert_eq!(c.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, vec![1, 2]);
    server.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed_and_pinging_ones_kept() {
    let server = TestServer::start_with(|c| c.gates.server.idle_timeout_secs = 1).await;
    let mut idle = server.client().await;
    let mut busy = server.client().await;
    let started = Instant::now();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(busy.call_raw("*ping", &Empty {}).await.status, 0);
    }
    idle.expect_closed().await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    busy.call(&AddRoomMember { rid: 1, uid: 1 }).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_not_buffered_without_bound() {
    // 20,000 quests written before any answer is read: the server must stop
    // reading while its answers wait, and then answer every one.
    let server = TestServer::start_with(|c| c.gates.server.max_pending_answers = 64).await;
    let mut c = server.client().await;
    let mut out = BytesMut::new();
    for uid in 0..20_000 {
        c.encode_signed(&mut out, &AddRoomMember { rid: 5, uid });
    }
    let (mut reader, mut writer) = c.stream.into_split();
    let write = tokio::spawn(async move {
        writer.write_all(&out).await.unwrap();
        writer
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut buf = BytesMut::new();
    let mut answers = 0;
    while answers < 20_000 {
        use tokio::io::AsyncReadExt;
        while let Some(frame) = rtm_protocol::Frame::decode(&mut buf, 1 << 20).unwrap() {
            let rtm_protocol::Frame::Answer(a) = frame else { panic!() };
            assert_eq!(a.status, 0);
            answers += 1;
        }
        if answers < 20_000 {
            let n = tokio::time::timeout(ANSWER_TIMEOUT, reader.read_buf(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0);
        }
    }
    write.await.unwrap();
    let mut check = server.client().await;
    assert_eq!(check.call(&GetRoomCount::new(vec![5])).await.unwrap().cn, vec![(5, 20_000)]);
    server.stop().await;
}

/// A gate with two endpoints serves both, and its connection cap counts
/// connections over all of them.
#[tokio::test]
async fn a_gate_serves_every_endpoint_under_one_connection_cap() {
    let mut config = test_config();
    config.gates.server.max_connections = 2;
    let bind = || rtm_server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let (first, second) = (bind(), bind());
    let (a, b) = (first.local_addr().unwrap(), second.local_addr().unwrap());
    let listeners = rtm_server::Listeners {
        server: vec![(first, false), (second, false)],
        client: vec![],
        websocket: vec![],
        admin: None,
        recording_api: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rtm_server::serve(listeners, config, async {
        let _ = stopped.await;
    }));
    let mut on_a = Client::connect(a, PID, SECRET).await;
    let mut on_b = Client::connect(b, PID, SECRET).await;
    on_a.call(&AddRoomMember { rid: 1, uid: 1 }).await.unwrap();
    on_b.call(&AddRoomMember { rid: 1, uid: 2 }).await.unwrap();
    assert_eq!(on_a.call(&GetRoomMembers { rid: 1 }).await.unwrap().uids, vec![1, 2], "one state behind both");
    Client::connect(b, PID, SECRET).await.expect_closed().await;
    Client::connect(a, PID, SECRET).await.expect_closed().await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
