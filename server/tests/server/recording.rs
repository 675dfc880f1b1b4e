//! Room recording over real TCP: the methods and their errors, the files
//! of `mix` and `individual` recordings line by line, subscription
//! updates, the idle and release stops, a restart mid-recording, and the
//! events.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rtm_protocol::client::MessageBody;
use rtm_protocol::methods::*;
use rtm_protocol::{payload, ErrorAnswer, ErrorCode, Frame};
use serde_json::Value as Json;

use crate::support::*;

/// A fresh directory for one test's recordings (and data, if asked).
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rtm-recording-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn recording_server(dir: &Path) -> TestServer {
    let recordings = dir.join("recordings").display().to_string();
    TestServer::start_with(move |c| {
        c.recording.dir = recordings;
        c.recording.poll_ms = 10;
        // The tests poll; `a_project_gets_ten_requests_a_second` checks the default.
        c.recording.requests_per_second = 10_000;
    })
    .await
}

pub fn text(from: i64, rid: i64, mid: i64, msg: &str) -> SendRoomMsg {
    SendRoomMsg { mtype: 51, from, rid, mid, msg: MessageBody::Text(msg.into()), attrs: String::new() }
}

fn start(resource_id: String, rid: i64, mode: &str) -> StartRecording {
    StartRecording { resource_id, rid, mode: mode.into(), ..StartRecording::default() }
}

async fn start_recording(backend: &mut Client, request: StartRecording) -> String {
    backend.call(&request).await.unwrap().sid
}

async fn acquire(backend: &mut Client, rid: i64) -> String {
    backend.call(&AcquireRecording { rid }).await.unwrap().resource_id
}

/// Every line of a file set, from its manifest's slices, as JSON.
pub fn lines_of(root: &Path, manifest: &str) -> (Json, Vec<Json>) {
    let manifest: Json = serde_json::from_slice(&std::fs::read(root.join(manifest)).unwrap()).unwrap();
    let mut lines = Vec::new();
    for slice in manifest["slices"].as_array().unwrap() {
        let text = std::fs::read_to_string(root.join(slice["file"].as_str().unwrap())).unwrap();
        assert_eq!(text.len() as u64, slice["bytes"].as_u64().unwrap(), "the manifest knows the slice's length");
        lines.extend(text.lines().map(|l| serde_json::from_str::<Json>(l).unwrap()));
    }
    (manifest, lines)
}

/// `(from, msg)` of each line.
pub fn said(lines: &[Json]) -> Vec<(i64, String)> {
    lines.iter().map(|l| (l["from"].as_i64().unwrap(), l["msg"].as_str().unwrap_or("").to_owned())).collect()
}

async fn wait_until_ended(backend: &mut Client, sid: &str) -> RecordingStatus {
    for _ in 0..200 {
        let status = backend.call(&QueryRecording { sid: sid.into() }).await.unwrap();
        if status.status == 8 {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("recording {sid} did not end");
}

#[tokio::test]
async fn every_method_answers_and_refuses_as_documented() {
    let dir = scratch("methods");
    let server = recording_server(&dir).await;
    let mut backend = server.client().await;
    backend.call(&AddRoomMember { rid: 1, uid: 9 }).await.unwrap();

    let resource = acquire(&mut backend, 1).await;
    let code = |e: ErrorAnswer| e.code;
    let bad_mode = backend.call(&start(resource.clone(), 1, "stereo")).await.unwrap_err();
    assert_eq!(code(bad_mode), ErrorCode::InvalidParameter.code());
    let idle = StartRecording { max_idle_seconds: Some(4), ..start(resource.clone(), 1, "mix") };
    assert_eq!(code(backend.call(&idle).await.unwrap_err()), ErrorCode::InvalidParameter.code());
    let escape = StartRecording { file_prefix: Some("../x".into()), ..start(resource.clone(), 1, "mix") };
    assert_eq!(code(backend.call(&escape).await.unwrap_err()), ErrorCode::InvalidParameter.code());
    let s3 = StartRecording { storage: Some("s3".into()), ..start(resource.clone(), 1, "mix") };
    assert_eq!(code(backend.call(&s3).await.unwrap_err()), ErrorCode::InvalidParameter.code());
    let unknown = backend.call(&start("nope".into(), 1, "mix")).await.unwrap_err();
    assert_eq!(code(unknown), ErrorCode::RecordingResourceInvalid.code());
    let other_room = backend.call(&start(resource.clone(), 2, "mix")).await.unwrap_err();
    assert_eq!(code(other_room), ErrorCode::RecordingResourceInvalid.code());

    let sid = start_recording(&mut backend, start(resource.clone(), 1, "mix")).await;
    let twice = backend.call(&start(resource, 1, "mix")).await.unwrap_err();
    assert_eq!(code(twice), ErrorCode::RecordingInProgress.code());
    let running = backend.call(&QueryRecording { sid: sid.clone() }).await.unwrap();
    assert_eq!((running.status, running.files.len()), (5, 0));
    assert!(running.slice_start_time > 0);
    backend.call(&UpdateRecording { sid: sid.clone(), uids: Some(vec![9]), exclude_uids: None }).await.unwrap();

    backend.call(&text(9, 1, 1, "hello")).await.unwrap();
    let stopped = backend.call(&StopRecording { sid: sid.clone() }).await.unwrap();
    assert_eq!(stopped.upload_status, "uploaded");
    assert_eq!(stopped.files.len(), 1);
    let file = &stopped.files[0];
    assert_eq!((file.uid.as_str(), file.mixed_all_users, file.is_playable), ("0", true, true));
    assert_eq!(file.filename, format!("{PID}/1/{sid}_mix.manifest.json"));
    let again = backend.call(&StopRecording { sid: sid.clone() }).await.unwrap_err();
    assert_eq!(code(again), ErrorCode::RecordingStopped.code());
    let update = backend.call(&UpdateRecording { sid: sid.clone(), uids: None, exclude_uids: None }).await;
    assert_eq!(code(update.unwrap_err()), ErrorCode::RecordingStopped.code());
    let ended = backend.call(&QueryRecording { sid: sid.clone() }).await.unwrap();
    assert_eq!((ended.status, ended.files), (8, stopped.files));
    let missing = backend.call(&QueryRecording { sid: "0123".into() }).await.unwrap_err();
    assert_eq!(code(missing), ErrorCode::RecordingNotFound.code());
    // Another project cannot see it.
    let mut other = server.client_for(OTHER_PID, OTHER_SECRET).await;
    let foreign = other.call(&QueryRecording { sid }).await.unwrap_err();
    assert_eq!(code(foreign), ErrorCode::RecordingNotFound.code());
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_project_gets_ten_requests_a_second() {
    let server = TestServer::start().await;
    let mut other = server.client_for(OTHER_PID, OTHER_SECRET).await;
    let mut refused = 0;
    // 25 in well under two seconds: whatever second boundary they straddle,
    // at most 20 fit.
    for _ in 0..25 {
        if let Err(e) = other.call(&AcquireRecording { rid: 5 }).await {
            assert_eq!(e.code, ErrorCode::RecordingRateLimited.code());
            refused += 1;
        }
    }
    assert!((5..=15).contains(&refused), "{refused} of 25 refused");
    // The project next door is not affected.
    server.client().await.call(&AcquireRecording { rid: 5 }).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn mix_and_individual_recordings_hold_exactly_the_messages() {
    let dir = scratch("files");
    let server = recording_server(&dir).await;
    let root = dir.join("recordings");
    let mut backend = server.client().await;
    backend.call(&AddRoomMember { rid: 3, uid: 1 }).await.unwrap();
    // Sent before the recordings start: in neither.
    backend.call(&text(1, 3, 1, "before")).await.unwrap();

    let resource = acquire(&mut backend, 3).await;
    let mix = start_recording(&mut backend, start(resource, 3, "mix")).await;
    let resource = acquire(&mut backend, 3).await;
    let only_text =
        StartRecording { mtypes: Some(vec![51]), exclude_uids: Some(vec![3]), ..start(resource, 3, "individual") };
    let individual = start_recording(&mut backend, only_text).await;

    backend.call(&text(1, 3, 2, "one")).await.unwrap();
    backend.call(&text(2, 3, 3, "two")).await.unwrap();
    let binary = SendRoomMsg {
        mtype: 52,
        from: 2,
        rid: 3,
        mid: 4,
        msg: MessageBody::Binary(vec![0, 1, 255]),
        attrs: "a".into(),
    };
    backend.call(&binary).await.unwrap();
    backend.call(&text(3, 3, 5, "three")).await.unwrap();
    backend.call(&text(1, 3, 6, "four")).await.unwrap();
    // Another room's messages never appear.
    backend.call(&text(1, 4, 7, "elsewhere")).await.unwrap();

    let stopped = backend.call(&StopRecording { sid: mix.clone() }).await.unwrap();
    let (manifest, lines) = lines_of(&root, &stopped.files[0].filename);
    assert_eq!(manifest["complete"], true);
    assert_eq!(
        said(&lines),
        vec![(1, "one".into()), (2, "two".into()), (2, String::new()), (3, "three".into()), (1, "four".into())]
    );
    assert_eq!(lines[2]["binary"], "AAH/");
    assert_eq!(lines[2]["attrs"], "a");
    assert_eq!(lines[2]["mtype"], 52);
    let ids: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in room order: {ids:?}");

    let stopped = backend.call(&StopRecording { sid: individual.clone() }).await.unwrap();
    let mut by_uid: Vec<_> =
        stopped.files.iter().map(|f| (f.uid.clone(), f.filename.clone(), f.mixed_all_users)).collect();
    by_uid.sort();
    assert_eq!(by_uid.len(), 2, "uid 3 excluded: {by_uid:?}");
    assert_eq!(by_uid[0], ("1".into(), format!("{PID}/3/{individual}_u1.manifest.json"), false));
    let (_, ones) = lines_of(&root, &by_uid[0].1);
    assert_eq!(said(&ones), vec![(1, "one".into()), (1, "four".into())]);
    let (manifest, twos) = lines_of(&root, &by_uid[1].1);
    assert_eq!(said(&twos), vec![(2, "two".into())], "mtype 52 left out");
    assert_eq!((manifest["uid"].as_i64(), manifest["mixed_all_users"].as_bool()), (Some(2), Some(false)));
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn room_events_are_recorded_among_the_messages_when_asked() {
    let dir = scratch("events");
    let server = recording_server(&dir).await;
    let root = dir.join("recordings");
    let mut backend = server.client().await;
    backend.call(&AddRoomMember { rid: 5, uid: 1 }).await.unwrap();
    let resource = acquire(&mut backend, 5).await;
    let mix = start_recording(&mut backend, StartRecording { events: Some(true), ..start(resource, 5, "mix") }).await;
    let resource = acquire(&mut backend, 5).await;
    let individual =
        start_recording(&mut backend, StartRecording { events: Some(true), ..start(resource, 5, "individual") }).await;
    let resource = acquire(&mut backend, 5).await;
    let without = start_recording(&mut backend, start(resource, 5, "mix")).await;

    // Apart by a few ms: lines are ordered by time.
    let pause = || tokio::time::sleep(Duration::from_millis(5));
    pause().await;
    backend.call(&AddRoomMember { rid: 5, uid: 2 }).await.unwrap();
    pause().await;
    backend.call(&text(2, 5, 1, "hi")).await.unwrap();
    pause().await;
    backend.call(&AddRoomBan { rid: Some(5), uid: 3, btime: 60 }).await.unwrap();
    pause().await;
    backend.call(&DelRoomMember { rid: 5, uid: 2 }).await.unwrap();
    pause().await;
    backend.call(&text(1, 5, 2, "bye")).await.unwrap();
    // Another room's events never appear.
    backend.call(&AddRoomMember { rid: 6, uid: 9 }).await.unwrap();

    let stopped = backend.call(&StopRecording { sid: mix }).await.unwrap();
    let mix_manifest = stopped.files[0].filename.clone();
    let (_, lines) = lines_of(&root, &mix_manifest);
    let shape: Vec<String> = lines
        .iter()
        .map(|l| match l["event"].as_str() {
            Some(event) => format!("{event} {}", l["uid"]),
            None => format!("msg {}", l["msg"].as_str().unwrap()),
        })
        .collect();
    assert_eq!(
        shape,
        [&["recording_started null"; 3][..], &["member_joined 2", "msg hi", "ban_added 3", "member_left 2", "msg bye"]]
            .concat(),
        "its own start and the two later recordings' starts, then events among the messages, in time order"
    );
    assert!(lines[0]["time"].as_i64().unwrap() > 0 && lines[0]["data"].is_object());

    let stopped = backend.call(&StopRecording { sid: individual.clone() }).await.unwrap();
    let mut sets: Vec<_> = stopped.files.iter().map(|f| (f.uid.clone(), f.filename.clone())).collect();
    sets.sort();
    assert_eq!(sets.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), vec!["1", "2", "events"]);
    assert_eq!(sets[2].1, format!("{PID}/5/{individual}_events.manifest.json"));
    let (manifest, events) = lines_of(&root, &sets[2].1);
    assert_eq!((manifest["events"].as_bool(), manifest["uid"].as_i64()), (Some(true), Some(0)));
    let names: Vec<&str> = events.iter().map(|l| l["event"].as_str().unwrap()).collect();
    // (The mix recording's end, before this stop, is one of the room's events too.)
    let expected = ["recording_started", "recording_started", "member_joined", "ban_added", "member_left"];
    assert_eq!(names, [&expected[..], &["recording_completed"]].concat());

    let stopped = backend.call(&StopRecording { sid: without }).await.unwrap();
    let (_, lines) = lines_of(&root, &stopped.files[0].filename);
    assert_eq!(said(&lines), vec![(2, "hi".into()), (1, "bye".into())], "no events unless asked");

    // Playing a recording with events plays its messages only.
    let play = StartPlayback { rid: 7, files: mix_manifest, speed: Some(0.0), ..StartPlayback::default() };
    backend.call(&play).await.unwrap();
    for _ in 0..100 {
        if mtimes(&mut backend, 7).await.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let played: Vec<String> = mtimes(&mut backend, 7).await.into_iter().map(|(_, text)| text).collect();
    assert_eq!(played, vec!["hi", "bye"]);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_update_changes_whom_the_recording_records() {
    let dir = scratch("update");
    let server = recording_server(&dir).await;
    let mut backend = server.client().await;
    backend.call(&AddRoomMember { rid: 5, uid: 1 }).await.unwrap();
    let resource = acquire(&mut backend, 5).await;
    let sid = start_recording(&mut backend, StartRecording { uids: Some(vec![1]), ..start(resource, 5, "mix") }).await;
    backend.call(&text(1, 5, 1, "a1")).await.unwrap();
    backend.call(&text(2, 5, 2, "b1")).await.unwrap();
    // The recording reads a message once it is stored; wait until it has these.
    tokio::time::sleep(Duration::from_millis(300)).await;
    backend.call(&UpdateRecording { sid: sid.clone(), uids: Some(vec![2]), exclude_uids: None }).await.unwrap();
    backend.call(&text(1, 5, 3, "a2")).await.unwrap();
    backend.call(&text(2, 5, 4, "b2")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    backend.call(&UpdateRecording { sid: sid.clone(), uids: Some(vec![]), exclude_uids: Some(vec![2]) }).await.unwrap();
    backend.call(&text(1, 5, 5, "a3")).await.unwrap();
    backend.call(&text(2, 5, 6, "b3")).await.unwrap();
    let stopped = backend.call(&StopRecording { sid }).await.unwrap();
    let (_, lines) = lines_of(&dir.join("recordings"), &stopped.files[0].filename);
    assert_eq!(said(&lines), vec![(1, "a1".into()), (2, "b2".into()), (1, "a3".into())]);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The next `pushevent` named `name`, skipping others and pings.
async fn next_event_named(listener: &mut Client, name: &str) -> Json {
    loop {
        match listener.read_frame().await {
            Some(Frame::Quest(quest)) if &quest.method[..] == b"pushevent" => {
                let event: PushEvent = payload::decode(quest.encoding, &quest.payload).unwrap();
                if event.event == name {
                    return serde_json::from_str(&event.data).unwrap();
                }
            }
            Some(Frame::Quest(_)) => {}
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_room_without_members_stops_after_max_idle_and_listeners_hear_it() {
    let dir = scratch("idle");
    let server = recording_server(&dir).await;
    let mut listener = server.client().await;
    let events = Some(vec!["recording_started".into(), "recording_completed".into()]);
    listener.call(&SetListen { rids: Some(vec![6]), events, ..SetListen::default() }).await.unwrap();
    let mut backend = server.client().await;
    backend.call(&AddRoomMember { rid: 6, uid: 1 }).await.unwrap();
    let resource = acquire(&mut backend, 6).await;
    let request = StartRecording { max_idle_seconds: Some(5), ..start(resource, 6, "mix") };
    let sid = start_recording(&mut backend, request).await;
    let started = next_event_named(&mut listener, "recording_started").await;
    assert_eq!((started["sid"].as_str(), started["mode"].as_str()), (Some(sid.as_str()), Some("mix")));

    backend.call(&text(1, 6, 1, "last words")).await.unwrap();
    let left = std::time::Instant::now();
    backend.call(&DelRoomMember { rid: 6, uid: 1 }).await.unwrap();
    let completed = next_event_named(&mut listener, "recording_completed").await;
    let idle_for = left.elapsed();
    assert!(idle_for >= Duration::from_secs(5) && idle_for < Duration::from_secs(8), "{idle_for:?}");
    assert_eq!(completed["reason"], "idle");
    assert_eq!(completed["sid"].as_str(), Some(sid.as_str()));
    // Unix seconds, 5 s of idleness apart at least.
    assert!(completed["end_time"].as_i64().unwrap() >= completed["begin_time"].as_i64().unwrap() + 5);
    let files = completed["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    let (manifest, lines) = lines_of(&dir.join("recordings"), files[0].as_str().unwrap());
    assert_eq!((manifest["complete"].as_bool(), said(&lines)), (Some(true), vec![(1, "last words".into())]));
    assert_eq!(wait_until_ended(&mut backend, &sid).await.status, 8);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn releasing_a_scheduled_room_and_max_seconds_end_recordings() {
    let dir = scratch("release");
    let server = recording_server(&dir).await;
    let mut backend = server.client().await;
    let created = backend.call(&CreateRoom { rid: Some(70), ..CreateRoom::default() }).await.unwrap();
    backend.call(&AddRoomMember { rid: created.rid, uid: 1 }).await.unwrap();
    let resource = acquire(&mut backend, created.rid).await;
    let released = start_recording(&mut backend, start(resource, created.rid, "mix")).await;
    backend.call(&text(1, created.rid, 1, "bye")).await.unwrap();
    backend.call(&DeleteRoom { rid: created.rid }).await.unwrap();
    let ended = wait_until_ended(&mut backend, &released).await;
    assert_eq!(ended.files.len(), 1);

    backend.call(&AddRoomMember { rid: 71, uid: 1 }).await.unwrap();
    let resource = acquire(&mut backend, 71).await;
    let at = std::time::Instant::now();
    let short =
        start_recording(&mut backend, StartRecording { max_seconds: Some(1), ..start(resource, 71, "mix") }).await;
    wait_until_ended(&mut backend, &short).await;
    assert!(at.elapsed() >= Duration::from_secs(1), "{:?}", at.elapsed());
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_recording_goes_on_after_a_restart_with_nothing_lost_or_twice() {
    let dir = scratch("restart");
    // The same data dir, and on the redis engine the same deployment.
    let restartable = Restartable::new(&dir.join("data"));
    let with_dir = || {
        let adjust = restartable.adjust();
        move |c: &mut rtm_server::config::Config| {
            adjust(c);
            c.recording.poll_ms = 10;
        }
    };
    let server = TestServer::start_with(with_dir()).await;
    let mut backend = server.client().await;
    backend.call(&AddRoomMember { rid: 8, uid: 1 }).await.unwrap();
    let resource = acquire(&mut backend, 8).await;
    let sid = start_recording(&mut backend, start(resource, 8, "individual")).await;
    for mid in 1..=30 {
        backend.call(&text(1 + mid % 2, 8, mid, &format!("m{mid}"))).await.unwrap();
    }
    server.stop().await;

    let server = TestServer::start_with(with_dir()).await;
    let mut backend = server.client().await;
    assert_eq!(backend.call(&QueryRecording { sid: sid.clone() }).await.unwrap().status, 5, "resumed");
    for mid in 31..=60 {
        backend.call(&text(1 + mid % 2, 8, mid, &format!("m{mid}"))).await.unwrap();
    }
    let stopped = backend.call(&StopRecording { sid }).await.unwrap();
    let root = dir.join("data").join("recordings");
    let mut seen = Vec::new();
    for file in &stopped.files {
        let (_, lines) = lines_of(&root, &file.filename);
        seen.extend(lines.iter().map(|l| l["mid"].as_i64().unwrap()));
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=60).collect::<Vec<_>>(), "every message once");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `mtime`s of a room's messages in history, oldest first.
async fn mtimes(backend: &mut Client, rid: i64) -> Vec<(i64, String)> {
    let rows = backend
        .call(&GetRoomMsg { uid: 0, rid, desc: false, num: 20, begin: 0, end: 0, lastid: 0, mtypes: None })
        .await
        .unwrap();
    rows.msgs
        .iter()
        .map(|m| {
            let text = match &m.msg {
                MessageBody::Text(text) => text.clone(),
                other => format!("{other:?}"),
            };
            (m.mtime, text)
        })
        .collect()
}

#[tokio::test]
async fn a_recording_plays_back_into_a_room_with_its_timing() {
    let dir = scratch("playback");
    let server = recording_server(&dir).await;
    let mut listener = server.client().await;
    let events = Some(vec!["playback_completed".into()]);
    listener.call(&SetListen { rids: Some(vec![21]), events, ..SetListen::default() }).await.unwrap();
    let mut backend = server.client().await;
    backend.call(&AddRoomMember { rid: 20, uid: 1 }).await.unwrap();
    let resource = acquire(&mut backend, 20).await;
    let sid = start_recording(&mut backend, start(resource, 20, "mix")).await;
    for (mid, gap) in [(1, 0), (2, 300), (3, 600)] {
        tokio::time::sleep(Duration::from_millis(gap)).await;
        backend.call(&text(1 + mid % 2, 20, mid, &format!("line {mid}"))).await.unwrap();
    }
    let stopped = backend.call(&StopRecording { sid }).await.unwrap();
    let original = mtimes(&mut backend, 20).await;

    let play = StartPlayback { rid: 21, files: stopped.files[0].filename.clone(), ..StartPlayback::default() };
    backend.call(&play).await.unwrap();
    let busy = backend.call(&play).await.unwrap_err();
    assert_eq!(busy.code, ErrorCode::PlaybackInProgress.code());
    let completed = next_event_named(&mut listener, "playback_completed").await;
    assert_eq!((completed["reason"].as_str(), completed["played"].as_i64()), (Some("finished"), Some(3)));
    let played = mtimes(&mut backend, 21).await;
    assert_eq!(played.iter().map(|p| &p.1).collect::<Vec<_>>(), original.iter().map(|o| &o.1).collect::<Vec<_>>());
    for i in 1..3 {
        let (was, now) = (original[i].0 - original[0].0, played[i].0 - played[0].0);
        assert!((now - was).abs() <= 100, "message {i}: {was} ms after the first when recorded, {now} ms when played");
    }
    let rows = backend
        .call(&GetRoomMsg { uid: 0, rid: 21, desc: false, num: 20, begin: 0, end: 0, lastid: 0, mtypes: None })
        .await
        .unwrap();
    assert_eq!(rows.msgs.iter().map(|m| m.from).collect::<Vec<_>>(), vec![2, 1, 2], "the original senders");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn prepared_files_repeat_until_stopped_and_play_at_full_speed() {
    let dir = scratch("prepared");
    let server = recording_server(&dir).await;
    // Prepared files live in the project's folder of the recordings directory.
    let content = dir.join("recordings").join(PID.to_string()).join("content");
    std::fs::create_dir_all(&content).unwrap();
    let script: String =
        (0..4).map(|i| format!("{{\"from\":9,\"msg\":\"tick {i}\",\"mtime\":{}}}\n", 1000 + i * 100)).collect();
    std::fs::write(content.join("ticks.jsonl"), script).unwrap();
    let mut listener = server.client().await;
    let events = Some(vec!["playback_completed".into()]);
    listener.call(&SetListen { rids: Some(vec![30, 31]), events, ..SetListen::default() }).await.unwrap();
    let mut backend = server.client().await;

    let missing = StartPlayback { rid: 30, files: "content/none.jsonl".into(), ..StartPlayback::default() };
    assert_eq!(backend.call(&missing).await.unwrap_err().code, ErrorCode::InvalidParameter.code());
    let escape = StartPlayback { rid: 30, files: "../etc/passwd".into(), ..StartPlayback::default() };
    assert_eq!(backend.call(&escape).await.unwrap_err().code, ErrorCode::InvalidParameter.code());
    // Another project's files are out of reach, whatever the name.
    let mut other = server.client_for(OTHER_PID, OTHER_SECRET).await;
    let foreign = StartPlayback { rid: 30, files: format!("{PID}/content/ticks.jsonl"), ..StartPlayback::default() };
    assert_eq!(other.call(&foreign).await.unwrap_err().code, ErrorCode::InvalidParameter.code());
    let empty = content.join("empty.jsonl");
    std::fs::write(&empty, "\n\n").unwrap();
    let not_playing = backend.call(&StopPlayback { rid: 30 }).await.unwrap_err();
    assert_eq!(not_playing.code, ErrorCode::PlaybackNotFound.code());

    // Until stopped, as user 5: four ticks 100 ms apart, over and over.
    let forever = StartPlayback {
        rid: 30,
        files: "content/ticks.jsonl".into(),
        repeat: Some(0),
        from_uid: Some(5),
        ..StartPlayback::default()
    };
    backend.call(&forever).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    backend.call(&StopPlayback { rid: 30 }).await.unwrap();
    let completed = next_event_named(&mut listener, "playback_completed").await;
    assert_eq!(completed["reason"], "stopped");
    let played = completed["played"].as_i64().unwrap();
    assert!((6..=14).contains(&played), "about ten ticks a second, {played} played");
    let rows = mtimes(&mut backend, 30).await;
    assert!(rows.len() as i64 == played.min(20));

    // Twice, both files, without waiting.
    let fast = StartPlayback {
        rid: 31,
        files: "content/ticks.jsonl|content/ticks.jsonl".into(),
        repeat: Some(2),
        speed: Some(0.0),
        ..StartPlayback::default()
    };
    backend.call(&fast).await.unwrap();
    let completed = next_event_named(&mut listener, "playback_completed").await;
    assert_eq!((completed["reason"].as_str(), completed["played"].as_i64()), (Some("finished"), Some(16)));

    // A file without lines, repeated until stopped, ends at once instead of spinning.
    let nothing =
        StartPlayback { rid: 31, files: "content/empty.jsonl".into(), repeat: Some(0), ..StartPlayback::default() };
    backend.call(&nothing).await.unwrap();
    let completed = next_event_named(&mut listener, "playback_completed").await;
    assert_eq!((completed["reason"].as_str(), completed["played"].as_i64()), (Some("error"), Some(0)));
    let tiny =
        StartPlayback { rid: 31, files: "content/ticks.jsonl".into(), speed: Some(1e-20), ..StartPlayback::default() };
    assert_eq!(backend.call(&tiny).await.unwrap_err().code, ErrorCode::InvalidParameter.code());
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_room_created_with_a_background_plays_it_until_released() {
    let dir = scratch("background");
    let server = recording_server(&dir).await;
    // Prepared files live in the project's folder of the recordings directory.
    let content = dir.join("recordings").join(PID.to_string()).join("content");
    std::fs::create_dir_all(&content).unwrap();
    let script: String = (0..3).map(|i| format!("{{\"from\":7,\"msg\":\"bg {i}\",\"mtime\":{}}}\n", i * 100)).collect();
    std::fs::write(content.join("bg.jsonl"), script).unwrap();
    let mut listener = server.client().await;
    let events = Some(vec!["playback_completed".into()]);
    listener.call(&SetListen { rids: Some(vec![50, 51, 52]), events, ..SetListen::default() }).await.unwrap();
    let mut backend = server.client().await;

    let missing = CreateRoom {
        rid: Some(51),
        playback: Some(RoomPlayback { files: "content/none.jsonl".into(), repeat: None, storage: None }),
        ..CreateRoom::default()
    };
    assert_eq!(backend.call(&missing).await.unwrap_err().code, ErrorCode::InvalidParameter.code());
    assert!(!backend.call(&RoomExists { rid: 51 }).await.unwrap().ok, "no room without its background");

    let with_background = CreateRoom {
        rid: Some(50),
        playback: Some(RoomPlayback { files: "content/bg.jsonl".into(), repeat: None, storage: None }),
        ..CreateRoom::default()
    };
    backend.call(&with_background).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let played = mtimes(&mut backend, 50).await;
    assert!(played.len() >= 5, "three lines 100 ms apart, repeated: {played:?}");
    assert_eq!(played[0].1, "bg 0");
    backend.call(&DeleteRoom { rid: 50 }).await.unwrap();
    let completed = next_event_named(&mut listener, "playback_completed").await;
    assert_eq!(completed["reason"], "room_released");

    // A playback started into a scheduled room ends with it too.
    backend.call(&CreateRoom { rid: Some(52), ..CreateRoom::default() }).await.unwrap();
    let forever =
        StartPlayback { rid: 52, files: "content/bg.jsonl".into(), repeat: Some(0), ..StartPlayback::default() };
    backend.call(&forever).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    backend.call(&DeleteRoom { rid: 52 }).await.unwrap();
    let completed = next_event_named(&mut listener, "playback_completed").await;
    assert_eq!(completed["reason"], "room_released");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
