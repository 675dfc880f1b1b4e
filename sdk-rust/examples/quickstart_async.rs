//! Async quick start. Start a server first (`cargo run -p rtm-server`), then:
//!
//! ```sh
//! cargo run -p rtm-sdk --example quickstart_async
//! ```
//!
//! `RTM_ENDPOINT`, `RTM_PID` and `RTM_SECRET` override the demo defaults.

use std::time::Duration;

use rtm_sdk::{codes, ClientOptions, RtmServerClient};

fn options() -> ClientOptions {
    let endpoint = std::env::var("RTM_ENDPOINT").unwrap_or_else(|_| "127.0.0.1:13315".into());
    let pid = std::env::var("RTM_PID").ok().and_then(|p| p.parse().ok()).unwrap_or(11000001);
    let secret = std::env::var("RTM_SECRET").unwrap_or_else(|_| "demo-secret-for-local-use-only".into());
    ClientOptions::new(endpoint, pid, secret).quest_timeout(Duration::from_secs(5))
}

#[tokio::main]
async fn main() -> Result<(), rtm_sdk::Error> {
    let client = RtmServerClient::connect(options()).await?;

    client.add_room_members(7001, &[1001, 1002, 1003]).await?;
    client.set_room_info(7001, Some("lobby"), Some("internal notes")).await?;
    client.add_room_ban(Some(7001), 1003, Some(Duration::from_secs(60))).await?;

    println!("members: {:?}", client.get_room_members(7001).await?);
    println!("counts:  {:?}", client.get_room_count(&[7001, 7002]).await?);
    println!("info:    {:?}", client.get_room_info(7001).await?);
    println!("1003 banned in 7001: {}", client.is_ban_of_room(7001, 1003).await?);

    // Calls from many tasks share the one connection.
    let mut tasks = tokio::task::JoinSet::new();
    for uid in 2000..2010 {
        let client = client.clone();
        tasks.spawn(async move { client.add_room_member(7002, uid).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("the task ran")?;
    }
    println!("7002 now has {} members", client.get_room_count(&[7002]).await?[&7002]);

    // Errors carry the server's code.
    match client.add_room_members(7001, &[]).await {
        Err(e) if e.is_server_code(codes::EMPTY_PARAMETER) => println!("empty list refused: {}", e.message()),
        other => println!("unexpected: {other:?}"),
    }

    client.del_room_members(7001, &[1001, 1002, 1003]).await?;
    client.close().await;
    Ok(())
}
