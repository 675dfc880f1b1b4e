//! Two players chat in a room. Start a server first (`cargo run -p
//! rtm-server`: the server API on 13315, the client gate on 13321), then:
//!
//! ```sh
//! cargo run -p rtm-sdk --example chat
//! ```
//!
//! The backend's part (a token per player) uses the server API with the
//! demo project; the players use the client gate. `RTM_ENDPOINT`,
//! `RTM_CLIENT_ENDPOINT`, `RTM_PID` and `RTM_SECRET` override the defaults.

use std::time::Duration;

use rtm_sdk::protocol::methods::GetToken;
use rtm_sdk::{ClientOptions, MessageBody, MessageKind, RtmClient, RtmClientOptions, RtmServerClient};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

#[tokio::main]
async fn main() -> Result<(), rtm_sdk::Error> {
    let pid: i64 = env("RTM_PID", "11000001").parse().unwrap_or(11000001);
    let backend = RtmServerClient::connect(ClientOptions::new(
        env("RTM_ENDPOINT", "127.0.0.1:13315"),
        pid,
        env("RTM_SECRET", "demo-secret-for-local-use-only"),
    ))
    .await?;
    let gate = env("RTM_CLIENT_ENDPOINT", "127.0.0.1:13321");
    let mut players = Vec::new();
    for uid in [1001, 1002] {
        // In a real game the backend hands the token to the player's app.
        let token = backend.execute(&GetToken { uid, version: None }).await?.token;
        players.push(RtmClient::login(RtmClientOptions::new(gate.clone(), pid, uid, token)).await?);
    }
    let (alice, bob) = (&players[0], &players[1]);
    alice.enter_room(7001).await?;
    bob.enter_room(7001).await?;

    let mut bob_hears = bob.messages();
    alice.send_room_chat(7001, "hi Bob, ready?").await?;
    alice.send_room_message(7001, 51, MessageBody::Text("{\"move\":\"e4\"}".into()), "").await?;
    for _ in 0..2 {
        match tokio::time::timeout(Duration::from_secs(5), bob_hears.next()).await {
            Ok(Some(Ok(message))) => match message.kind {
                MessageKind::Chat(text) => println!("bob <- chat from {}: {text}", message.from),
                other => println!("bob <- mtype {} from {}: {other:?}", message.mtype, message.from),
            },
            other => println!("bob heard nothing more: {other:?}"),
        }
    }
    println!("alice is in rooms {:?}", alice.user_rooms().await?);
    alice.bye().await;
    bob.bye().await;
    Ok(())
}
