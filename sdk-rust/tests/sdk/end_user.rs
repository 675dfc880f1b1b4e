//! The end-user client against the real server's client gate.

use std::time::Duration;

use rtm_sdk::protocol::methods::GetToken;
use rtm_sdk::{ErrorKind, MessageBody, MessageKind, RtmClient, RtmClientOptions, RtmServerClient};

use crate::support::*;

async fn token(backend: &RtmServerClient, uid: i64) -> String {
    backend.execute(&GetToken { uid, version: None }).await.unwrap().token
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
    let again = bob.send_room_message_with_mid(7, 99, 51, MessageBody::Text("once".into()), "").await.unwrap();
    let mut alice_heard = alice.messages();
    assert_eq!(bob.send_room_message_with_mid(7, 99, 51, MessageBody::Text("once".into()), "").await.unwrap(), again);
    let heard_once = next(&mut alice_heard).await;
    assert_eq!(heard_once.mid, 99);
    assert!(tokio::time::timeout(Duration::from_millis(300), alice_heard.next()).await.is_err(), "only once");

    bob.leave_room(7).await.unwrap();
    assert!(bob.user_rooms().await.unwrap().is_empty());
    alice.bye().await;
    bob.bye().await;
}
