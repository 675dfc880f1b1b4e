//! The end-user client against the real server's client gate.

use std::time::Duration;

use rtm_sdk::{ErrorKind, HistoryQuery, MessageBody, MessageKind, RtmClient, RtmClientOptions, RtmServerClient};

use crate::support::*;

async fn token(backend: &RtmServerClient, uid: i64) -> String {
    backend.get_token(uid).await.unwrap()
}

async fn next(messages: &mut rtm_sdk::RoomMessages) -> rtm_sdk::RoomMessage {
    tokio::time::timeout(Duration::from_secs(10), messages.next()).await.unwrap().unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_players_chat_and_a_bad_token_is_refused() {
    let server = tokio::task::spawn_blocking(ServerThread::start).await.unwrap();
    let backend = RtmServerClient::connect(server.options()).await.unwrap();
    let endpoint = server.client_addr.to_string();
    let options = |uid, token| RtmClientOptions::new(endpoint.clone(), PID, uid, token);
    let alice = RtmClient::login(options(1, token(&backend, 1).await)).await.unwrap();
    let bob = RtmClient::login(options(2, token(&backend, 2).await)).await.unwrap();
    let refused = RtmClient::login(options(3, "not a token".into())).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Server, "{refused}");

    alice.enter_room(7).await.unwrap();
    bob.enter_room(7).await.unwrap();
    assert_eq!(alice.user_rooms().await.unwrap(), vec![7]);
    assert_eq!(bob.room_members(7).await.unwrap(), vec![1, 2]);
    let mut heard = bob.messages();
    let mtime = alice.send_room_message(7, 51, MessageBody::Text("hello".into()), "{}").await.unwrap();
    alice.send_room_chat(7, "hi bob").await.unwrap();
    alice.send_room_message(7, 32, MessageBody::Text("{\"cmd\":1}".into()), "").await.unwrap();
    alice.send_room_message(7, 52, MessageBody::Binary(vec![0, 255]), "").await.unwrap();
    let first = next(&mut heard).await;
    assert_eq!((first.from, first.rid, first.mtype, first.mtime), (1, 7, 51, mtime));
    assert_eq!((first.kind, first.attrs.as_str()), (MessageKind::Text("hello".into()), "{}"));
    assert_eq!(next(&mut heard).await.kind, MessageKind::Chat("hi bob".into()));
    assert_eq!(next(&mut heard).await.kind, MessageKind::Cmd("{\"cmd\":1}".into()));
    assert_eq!(next(&mut heard).await.kind, MessageKind::Binary(vec![0, 255]));

    // A retry with the same mid is answered but not delivered again.
    let mut alice_heard = alice.messages();
    let again = bob.send_room_message_with_mid(7, 99, 51, MessageBody::Text("once".into()), "").await.unwrap();
    assert_eq!(bob.send_room_message_with_mid(7, 99, 51, MessageBody::Text("once".into()), "").await.unwrap(), again);
    let heard_once = next(&mut alice_heard).await;
    assert_eq!(heard_once.mid, 99);
    assert!(tokio::time::timeout(Duration::from_millis(300), alice_heard.next()).await.is_err(), "only once");

    // The backend speaks as a system uid.
    let mtime = backend.send_room_message(9999, 7, 6, MessageBody::Text("server notice".into()), "").await.unwrap();
    let notice = next(&mut heard).await;
    assert_eq!((notice.from, notice.mtype, notice.mtime), (9999, 6, mtime));

    bob.leave_room(7).await.unwrap();
    assert!(bob.user_rooms().await.unwrap().is_empty());
    alice.bye().await;
    // A kicked-out client is closed for good.
    backend.kickout(2).await.unwrap();
    let mut closed = false;
    for _ in 0..50 {
        if bob.user_rooms().await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "bob's client closed after the kickout");
    backend.remove_token(1).await.unwrap();
    let again = RtmClient::login(options(1, token(&backend, 1).await)).await;
    assert!(again.is_ok(), "a token issued after the removal works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_by_itself_for_players_and_backends() {
    let server = tokio::task::spawn_blocking(ServerThread::start).await.unwrap();
    let backend = RtmServerClient::connect(server.options()).await.unwrap();
    let options = RtmClientOptions::new(server.client_addr.to_string(), PID, 1, token(&backend, 1).await);
    let alice = RtmClient::login(options).await.unwrap();
    alice.enter_room(7).await.unwrap();
    let mut mids = Vec::new();
    for i in 0..15 {
        let mid = 1000 + i;
        let mtype = if i % 2 == 0 { 51 } else { 52 };
        alice.send_room_message_with_mid(7, mid, mtype, MessageBody::Text(format!("m{i}")), "").await.unwrap();
        mids.push(mid);
    }
    // Paging 4 at a time walks all 15 rows, newest first.
    let rows = alice.room_history(7, HistoryQuery::newest_first(4)).collect().await.unwrap();
    assert_eq!(rows.iter().map(|r| r.mid).collect::<Vec<_>>(), mids.iter().rev().copied().collect::<Vec<_>>());
    let backend_rows =
        backend.room_history(99, 7, HistoryQuery::oldest_first(6).mtypes(&[52])).collect().await.unwrap();
    assert_eq!(backend_rows.iter().map(|r| r.mid).collect::<Vec<_>>(), vec![1001, 1003, 1005, 1007, 1009, 1011, 1013]);
    assert_eq!(alice.get_room_message_count(7, 0, 0, Some(&[51])).await.unwrap(), 8);
    assert_eq!(backend.get_room_message_count(7, 0, 0, None).await.unwrap(), 15);
    let info = backend.get_room_message(7, 1, 1004).await.unwrap();
    assert_eq!((info.mtype, info.msg), (51, MessageBody::Text("m4".into())));
    alice.delete_room_message(7, 1004).await.unwrap();
    let gone = alice.get_room_message(7, 1, 1004).await.unwrap_err();
    assert!(gone.is_server_code(rtm_sdk::codes::MESSAGE_NOT_FOUND), "{gone}");
    backend.delete_room_message(7, 1, 1005).await.unwrap();
    let last = alice.rooms_with_last_message(None).await.unwrap();
    assert_eq!(last[&7].mid, 1014);
}

/// A TCP relay to the client gate whose current connections can be cut,
/// to drop a client's link without the server's say.
struct Relay {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn start(to: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cut = cuts.subscribe();
                cut.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    /// Drops every connection open now.
    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_link_logs_in_again_with_the_same_token_and_reenters_the_rooms() {
    let server = tokio::task::spawn_blocking(ServerThread::start).await.unwrap();
    let relay = Relay::start(server.client_addr).await;
    let backend = RtmServerClient::connect(server.options()).await.unwrap();
    let options = RtmClientOptions::new(relay.addr.to_string(), PID, 1, token(&backend, 1).await)
        .quest_timeout(Duration::from_secs(5));
    let alice = RtmClient::login(options).await.unwrap();
    alice.enter_room(7).await.unwrap();
    alice.enter_room(8).await.unwrap();
    let mut heard = alice.messages();

    relay.cut();
    // While alice is away, the backend takes her out of room 7: the relogin
    // puts her back, as the RTM SDKs do with the rooms they entered.
    backend.del_room_member(7, 1).await.unwrap();
    let mut back = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if backend.get_room_members(7).await.unwrap().contains(&1) {
            back = true;
            break;
        }
    }
    assert!(back, "alice re-entered room 7 after logging in again");
    assert_eq!(alice.user_rooms().await.unwrap(), vec![7, 8]);
    let mtime = backend.send_room_message(9, 8, 51, MessageBody::Text("still here?".into()), "").await.unwrap();
    let message = next(&mut heard).await;
    assert_eq!((message.rid, message.mtime), (8, mtime), "pushes reach the new session");
}
