//! Every method, callback form, from a plain thread with no async code.

use std::sync::mpsc;
use std::time::Duration;

use rtm_sdk::{blocking, Error, RoomInfo};

use crate::support::*;

type Results<T> = mpsc::Receiver<Result<T, Error>>;

/// A callback that forwards its result into a channel, and a way to wait for it.
fn channel<T: Send + 'static>() -> (impl FnOnce(Result<T, Error>) + Send + 'static, Results<T>) {
    let (tx, rx) = mpsc::channel();
    (move |result| tx.send(result).unwrap(), rx)
}

fn wait<T>(rx: Results<T>) -> T {
    rx.recv_timeout(Duration::from_secs(10)).expect("the callback ran").expect("the call succeeded")
}

#[test]
fn every_method_with_a_callback() {
    let server = ServerThread::start();
    let client = blocking::RtmServerClient::connect(server.options()).unwrap();

    let (cb, rx) = channel();
    client.add_room_member_with_callback(1, 2, cb);
    wait(rx);
    let (cb, rx) = channel();
    client.add_room_members_with_callback(1, &[3, 4], cb);
    assert_eq!(wait(rx), vec![3, 4]);
    let (cb, rx) = channel();
    client.del_room_member_with_callback(1, 2, cb);
    wait(rx);
    let (cb, rx) = channel();
    client.del_room_members_with_callback(1, &[4], cb);
    assert_eq!(wait(rx), vec![4]);
    let (cb, rx) = channel();
    client.add_user_rooms_with_callback(7, &[1, 2], cb);
    wait(rx);
    let (cb, rx) = channel();
    client.delete_user_rooms_with_callback(7, &[2], cb);
    wait(rx);
    let (cb, rx) = channel();
    client.get_room_members_with_callback(1, cb);
    assert_eq!(wait(rx), vec![3, 7]);
    let (cb, rx) = channel();
    client.get_room_count_with_callback(&[1, 2], cb);
    let counts = wait(rx);
    assert_eq!((counts[&1], counts[&2]), (2, 0));
    let (cb, rx) = channel();
    client.set_room_info_with_callback(1, Some("o"), None, cb);
    wait(rx);
    let (cb, rx) = channel();
    client.get_room_info_with_callback(1, cb);
    assert_eq!(wait(rx), RoomInfo { oinfo: "o".into(), pinfo: String::new() });
    let (cb, rx) = channel();
    client.add_room_ban_with_callback(Some(1), 3, None, cb);
    wait(rx);
    let (cb, rx) = channel();
    client.is_ban_of_room_with_callback(1, 3, cb);
    assert!(wait(rx));
    let (cb, rx) = channel();
    client.remove_room_ban_with_callback(Some(1), 3, cb);
    wait(rx);
    let (cb, rx) = channel();
    client.add_project_black_with_callback(3, Some(Duration::from_secs(5)), cb);
    wait(rx);
    let (cb, rx) = channel();
    client.is_project_black_with_callback(3, cb);
    assert!(wait(rx));
    let (cb, rx) = channel();
    client.remove_project_black_with_callback(3, cb);
    wait(rx);
    let (cb, rx) = channel();
    client.ping_with_callback(cb);
    assert!(wait(rx) > 0);
    let (cb, rx) = channel();
    client.create_room_with_callback(&rtm_sdk::CreateRoom { rid: Some(77), ..Default::default() }, cb);
    assert_eq!(wait(rx).rid, 77);
    let (cb, rx) = channel();
    client.get_room_with_callback(77, cb);
    assert!(wait(rx).scheduled);
    let (cb, rx) = channel();
    client.room_exists_with_callback(77, cb);
    assert!(wait(rx));
    let (cb, rx) = channel();
    client.keep_room_alive_with_callback(77, cb);
    wait(rx);
    let (cb, rx) = channel();
    client.extend_room_with_callback(77, Some(5), None, cb);
    assert!(!wait(rx).auto_extend);
    let (cb, rx) = channel();
    client.delete_room_with_callback(77, cb);
    wait(rx);
}

#[test]
fn callback_errors_arrive_too() {
    let server = ServerThread::start();
    let client = blocking::RtmServerClient::connect(server.options()).unwrap();
    let (cb, rx) = channel::<()>();
    client.set_room_info_with_callback(1, None, None, cb);
    let err = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap_err();
    assert_eq!(err.kind(), rtm_sdk::ErrorKind::InvalidArgument);
    let (cb, rx) = channel::<Vec<i64>>();
    client.add_room_members_with_callback(1, &[], cb);
    let err = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap_err();
    assert!(err.is_server_code(rtm_sdk::codes::EMPTY_PARAMETER));
}

#[tokio::test]
async fn the_async_client_has_callbacks_too() {
    let server = ServerThread::start();
    let client = rtm_sdk::RtmServerClient::connect(server.options()).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    client.add_room_members_with_callback(5, &[1, 2], move |result| {
        let _ = tx.send(result);
    });
    assert_eq!(rx.await.unwrap().unwrap(), vec![1, 2]);
}
