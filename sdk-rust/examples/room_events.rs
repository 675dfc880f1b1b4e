//! Scheduled rooms and room events. Start a server first
//! (`cargo run -p rtm-server`), then:
//!
//! ```sh
//! cargo run -p rtm-sdk --example room_events
//! ```
//!
//! One client listens to every event of the project; another creates a
//! scheduled room, adds participants with roles, changes a mode and deletes
//! the room. The listener prints each event as it arrives.
//! `RTM_ENDPOINT`, `RTM_PID` and `RTM_SECRET` override the demo defaults.

use std::time::Duration;

use rtm_sdk::{ClientOptions, CreateRoom, ListenFilter, MemberSpec, Mode, Role, RoomEvent, RtmServerClient};

fn options() -> ClientOptions {
    let endpoint = std::env::var("RTM_ENDPOINT").unwrap_or_else(|_| "127.0.0.1:13315".into());
    let pid = std::env::var("RTM_PID").ok().and_then(|p| p.parse().ok()).unwrap_or(11000001);
    let secret = std::env::var("RTM_SECRET").unwrap_or_else(|_| "demo-secret-for-local-use-only".into());
    ClientOptions::new(endpoint, pid, secret).quest_timeout(Duration::from_secs(5))
}

#[tokio::main]
async fn main() -> Result<(), rtm_sdk::Error> {
    let listener = RtmServerClient::connect(options()).await?;
    listener.set_listen(&ListenFilter::new(), true, true).await?;
    let mut events = listener.room_events();

    let client = RtmServerClient::connect(options()).await?;
    let room = CreateRoom {
        max_seconds: Some(3600),
        idle_seconds: Some(600),
        members: Some(vec![MemberSpec::new(1001, Role::Presenter), MemberSpec::new(1002, Role::Consumer)]),
        ..CreateRoom::default()
    };
    let created = client.create_room(&room).await?;
    println!("created room {} valid until {}", created.rid, created.valid_until);
    client.upsert_room_members(created.rid, &[MemberSpec::new(1003, Role::Attendee)]).await?;
    client.set_member_mode(created.rid, 1003, Mode::SendOnly).await?;
    for member in client.list_room_members(created.rid, None, None).await?.members {
        println!("  member {} {} {:?} joined at {} ms", member.uid, member.role, member.mode, member.joined_at);
    }
    client.delete_room(created.rid).await?;

    // Events of this room until its release (other rooms' events are skipped).
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            Ok(Some(Ok(event))) if event.rid == created.rid => {
                println!("event {:<15} uid {:<5} {}", event.name, event.uid, event.data);
                if event.name == RoomEvent::ROOM_RELEASED {
                    break;
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(lagged))) => eprintln!("{lagged}"),
            Ok(None) | Err(_) => {
                eprintln!("no more events");
                break;
            }
        }
    }
    Ok(())
}
