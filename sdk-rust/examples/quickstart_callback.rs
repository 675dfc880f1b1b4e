//! Callback quick start: no async code in the caller. Start a server first
//! (`cargo run -p rtm-server`), then:
//!
//! ```sh
//! cargo run -p rtm-sdk --example quickstart_callback
//! ```

use std::sync::mpsc;
use std::time::Duration;

use rtm_sdk::{blocking::RtmServerClient, ClientOptions};

fn main() -> Result<(), rtm_sdk::Error> {
    let endpoint = std::env::var("RTM_ENDPOINT").unwrap_or_else(|_| "127.0.0.1:13315".into());
    let client = RtmServerClient::connect(ClientOptions::new(endpoint, 11000001, "demo-secret-for-local-use-only"))?;

    // Each call returns at once; its callback runs on the client's
    // background thread when the answer arrives.
    let (done, finished) = mpsc::channel();
    for uid in 1..=5 {
        let done = done.clone();
        client.add_room_member_with_callback(8001, uid, move |result| {
            done.send(result.map(|()| uid)).expect("main is waiting");
        });
    }
    for _ in 1..=5 {
        match finished.recv_timeout(Duration::from_secs(10)).expect("every callback runs") {
            Ok(uid) => println!("added {uid}"),
            Err(e) => eprintln!("add failed: {e}"),
        }
    }

    let (tx, rx) = mpsc::channel();
    client.get_room_members_with_callback(8001, move |result| tx.send(result).expect("main is waiting"));
    println!("members: {:?}", rx.recv_timeout(Duration::from_secs(10)).expect("the callback runs")?);

    let (tx, rx) = mpsc::channel();
    client.is_ban_of_room_with_callback(8001, 3, move |result| tx.send(result).expect("main is waiting"));
    println!("3 banned: {}", rx.recv_timeout(Duration::from_secs(10)).expect("the callback runs")?);

    client.del_room_members(8001, &[1, 2, 3, 4, 5])?;
    Ok(())
}
