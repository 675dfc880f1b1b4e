//! The end-user client against the real server's client gate.

use std::time::Duration;

use rtm_sdk::{ErrorKind, MessageBody, MessageKind, RtmClient, RtmClientOptions, RtmServerClient};

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
