//! Blocking quick start, from a plain `fn main`. Start a server first
//! (`cargo run -p rtm-server`), then:
//!
//! ```sh
//! cargo run -p rtm-sdk --example quickstart_blocking
//! ```

use std::time::Duration;

use rtm_sdk::{blocking::RtmServerClient, ClientOptions, ConnectionEvent};

fn main() -> Result<(), rtm_sdk::Error> {
    let endpoint = std::env::var("RTM_ENDPOINT").unwrap_or_else(|_| "127.0.0.1:13315".into());
    let options = ClientOptions::new(endpoint, 11000001, "demo-secret-for-local-use-only")
        .keepalive(Some(Duration::from_secs(20)))
        .on_event(|event| {
            if let ConnectionEvent::Disconnected { reason } = event {
                eprintln!("disconnected: {reason}");
            }
        });
    let client = RtmServerClient::connect(options)?;

    client.add_room_member(9001, 42)?;
    client.set_room_info(9001, Some("public"), None)?;
    let info = client.get_room_info(9001)?;
    println!("oinfo = {:?}, pinfo = {:?}", info.oinfo, info.pinfo);

    client.add_room_ban(None, 42, Some(Duration::from_secs(30)))?;
    println!("42 banned everywhere: {}", client.is_ban_of_room(9001, 42)?);
    client.remove_room_ban(None, 42)?;

    // A shorter timeout for one call.
    let ts = client.with_timeout(Duration::from_secs(1)).ping()?;
    println!("server time: {ts} ms");

    client.del_room_member(9001, 42)?;
    client.set_room_info(9001, Some(""), None)?;
    Ok(())
}
