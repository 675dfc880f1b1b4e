//! Storage tests on real files in a temporary directory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;
use crate::commit::Commit;
use crate::model::{BanScope, RoomKey};
use crate::state::State;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rtm-storage-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn settings(dir: &Path, policy: FsyncPolicy, snapshot_after_bytes: u64, repair: bool) -> StorageSettings<'_> {
    StorageSettings { dir, policy, snapshot_after_bytes, repair }
}

fn counter() -> prometheus::IntCounter {
    prometheus::IntCounter::new("test", "test").unwrap()
}

/// A state whose changes go through the log, as the engine's do.
struct Logged(Commit);

impl std::ops::Deref for Logged {
    type Target = State;
    fn deref(&self) -> &State {
        self.0.state()
    }
}

impl Logged {
    fn apply(&self, mutation: Mutation) {
        self.0.apply(mutation);
    }
}

/// Opens `dir` into a fresh state.
fn open_state(s: &StorageSettings<'_>) -> Result<Logged, StorageError> {
    let state = State::default();
    let log = open(s, Arc::new(state.downgrade()), counter())?;
    let presence = Arc::new(crate::presence::Presence::new(crate::config::MultiLogin::All, 0));
    let commit = Commit::new(state, Arc::default(), presence);
    commit.attach_log(log);
    Ok(Logged(commit))
}

fn close(state: &Logged) {
    state.0.log().unwrap().close();
}

/// Bytes in `dir`; files the snapshotter deletes meanwhile count as gone.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()
}

const ROOM: RoomKey = RoomKey { pid: 1, rid: 7 };

fn wal_files(dir: &Path) -> Vec<PathBuf> {
    list(dir).unwrap().into_iter().filter(|(k, _)| *k == Kind::Wal).map(|(_, g)| wal_path(dir, g)).collect()
}

#[test]
fn everything_comes_back_under_every_policy() {
    for policy in [FsyncPolicy::Always, FsyncPolicy::Everysec, FsyncPolicy::Off] {
        let dir = TempDir::new();
        let s = settings(&dir.0, policy, 1 << 20, false);
        let state = open_state(&s).unwrap();
        state.apply(Mutation::AddMembers { pid: 1, rid: 7, uids: vec![1, 2, 3], at_ms: 0 });
        state.apply(Mutation::RemoveMembers { pid: 1, rid: 7, uids: vec![2] });
        state.apply(Mutation::SetRoomInfo { pid: 1, rid: 7, oinfo: Some("o".into()), pinfo: Some("p".into()) });
        state.apply(Mutation::AddBan { pid: 1, scope: BanScope::AllRooms, uid: 9, expires_at_ms: None });
        close(&state);

        let back = open_state(&s).unwrap();
        assert_eq!(back.members(ROOM), vec![1, 3], "{policy:?}");
        assert_eq!(back.room_info(ROOM), ("o".into(), "p".into()));
        assert!(back.is_banned_in_room(1, 99, 9, crate::clock::now_ms()));
        // And once more, across a second restart with new writes.
        back.apply(Mutation::AddMembers { pid: 1, rid: 7, uids: vec![4], at_ms: 0 });
        close(&back);
        assert_eq!(open_state(&s).unwrap().members(ROOM), vec![1, 3, 4]);
    }
}

#[test]
fn scheduled_rooms_survive_restarts_and_snapshots() {
    for snapshot_after in [1 << 20, 4096] {
        let dir = TempDir::new();
        let s = settings(&dir.0, FsyncPolicy::Always, snapshot_after, false);
        let state = open_state(&s).unwrap();
        let schedule = crate::model::Schedule {
            valid_from_ms: 1_000,
            valid_until_ms: 4_000_000_000_000,
            max_seconds: 60,
            release_threshold: 2,
            idle_seconds: 0,
            begin_ms: 0,
            auto_extend: true,
        };
        state.apply(Mutation::CreateRoom { pid: 1, rid: 7, schedule, oinfo: Some("o".into()), pinfo: None });
        state.apply(Mutation::AddMembers { pid: 1, rid: 7, uids: vec![1, 2], at_ms: 0 });
        state.apply(Mutation::RoomBegan { pid: 1, rid: 7, at_ms: 5_000 });
        state.apply(Mutation::CreateRoom { pid: 1, rid: 8, schedule, oinfo: None, pinfo: None });
        state.apply(Mutation::ReleaseRoom { pid: 1, rid: 8, reason: crate::model::ReleaseReason::Deleted });
        for uid in 0..500 {
            // Enough log to trigger a snapshot in the second pass.
            state.apply(Mutation::AddMembers { pid: 1, rid: 100, uids: vec![uid], at_ms: 0 });
        }
        close(&state);
        if snapshot_after == 4096 {
            close(&open_state(&s).unwrap());
        }
        let back = open_state(&s).unwrap();
        assert_eq!(back.schedule(ROOM), Some(crate::model::Schedule { begin_ms: 5_000, ..schedule }));
        assert_eq!(back.members(ROOM), vec![1, 2]);
        assert_eq!(back.room_info(ROOM).0, "o");
        assert!(!back.room_exists(RoomKey { pid: 1, rid: 8 }), "a released room stays released");
        close(&back);
    }
}

#[test]
fn one_data_directory_serves_one_server() {
    let dir = TempDir::new();
    let s = settings(&dir.0, FsyncPolicy::Always, 1 << 20, false);
    let first = open_state(&s).unwrap();
    let err = open_state(&s).err().expect("the directory is locked");
    assert!(err.to_string().contains("another rtm-server"), "{err}");
    close(&first);
    drop(first);
    open_state(&s).unwrap();
}

#[test]
fn the_durable_position_follows_the_appends() {
    let dir = TempDir::new();
    let state = open_state(&settings(&dir.0, FsyncPolicy::Always, 1 << 20, false)).unwrap();
    let log = state.0.log().unwrap().clone();
    for uid in 0..100 {
        state.apply(Mutation::AddMembers { pid: 1, rid: 7, uids: vec![uid], at_ms: 0 });
    }
    assert_eq!(log.appended(), 100);
    for _ in 0..200 {
        if log.durable() == 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(log.durable(), 100);
    close(&state);
}

#[test]
fn a_ban_that_expired_while_down_stays_expired() {
    let dir = TempDir::new();
    let s = settings(&dir.0, FsyncPolicy::Always, 1 << 20, false);
    let state = open_state(&s).unwrap();
    let soon = crate::clock::now_ms() + 200;
    state.apply(Mutation::AddBan { pid: 1, scope: BanScope::Room(7), uid: 1, expires_at_ms: Some(soon) });
    state.apply(Mutation::AddBan { pid: 1, scope: BanScope::Room(7), uid: 2, expires_at_ms: None });
    close(&state);
    std::thread::sleep(Duration::from_millis(300));
    let back = open_state(&s).unwrap();
    let now = crate::clock::now_ms();
    assert!(!back.is_banned_in_room(1, 7, 1, now), "expired while the server was down");
    assert!(back.is_banned_in_room(1, 7, 2, now));
}

/// Logs three single-member adds to `ROOM` and returns the log file.
fn three_records(s: &StorageSettings<'_>) -> PathBuf {
    let state = open_state(s).unwrap();
    for uid in 1..=3 {
        state.apply(Mutation::AddMembers { pid: 1, rid: 7, uids: vec![uid], at_ms: 0 });
    }
    close(&state);
    wal_files(s.dir).pop().unwrap()
}

#[test]
fn a_torn_tail_record_is_dropped() {
    let dir = TempDir::new();
    let s = settings(&dir.0, FsyncPolicy::Always, 1 << 20, false);
    let wal = three_records(&s);
    let len = std::fs::metadata(&wal).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&wal).unwrap().set_len(len - 3).unwrap();

    let back = open_state(&s).unwrap();
    assert_eq!(back.members(ROOM), vec![1, 2], "the cut record is gone, the others are whole");
    close(&back);
    assert!(std::fs::metadata(&wal).unwrap().len() < len - 3, "the torn bytes were cut off the file");
    assert_eq!(open_state(&s).unwrap().members(ROOM), vec![1, 2]);
}

#[test]
fn corruption_in_the_middle_stops_startup_unless_repaired() {
    let dir = TempDir::new();
    let s = settings(&dir.0, FsyncPolicy::Always, 1 << 20, false);
    let wal = three_records(&s);
    let mut bytes = std::fs::read(&wal).unwrap();
    let first_len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    let second = record::HEADER + first_len;
    bytes[second + record::HEADER + 2] ^= 0xff;
    std::fs::write(&wal, &bytes).unwrap();

    let err = open_state(&s).err().expect("start-up refuses");
    let text = err.to_string();
    assert!(text.contains(&wal.display().to_string()), "{text}");
    assert!(text.contains(&format!("offset {second}")), "{text}");
    assert!(text.contains("--repair"), "{text}");

    let repaired = open_state(&settings(&dir.0, FsyncPolicy::Always, 1 << 20, true)).unwrap();
    assert_eq!(repaired.members(ROOM), vec![1], "cut at the damage");
}

#[test]
fn snapshots_keep_the_directory_bounded() {
    let dir = TempDir::new();
    let s = settings(&dir.0, FsyncPolicy::Off, 16 * 1024, false);
    let state = open_state(&s).unwrap();
    for round in 0..20_000i64 {
        state.apply(Mutation::AddMembers { pid: 1, rid: round % 50, uids: vec![round % 1000], at_ms: 0 });
        state.apply(Mutation::RemoveMembers { pid: 1, rid: round % 50, uids: vec![(round + 500) % 1000] });
    }
    let expected = state.export();
    close(&state);
    // 40,000 records of ~30 bytes is over a megabyte of log; once the
    // snapshots have caught up (a busy machine can delay one, and a
    // rotation that finds one running skips it) the directory holds a few
    // snapshots' and logs' worth.
    let size = dir_size(&dir.0);
    assert!(size < 300 * 1024, "the data directory holds {size} bytes");
    assert!(list(&dir.0).unwrap().iter().any(|(k, _)| *k == Kind::Snapshot));
    let back = open_state(&s).unwrap();
    let mut got = back.export();
    let mut want = expected;
    got.sort_by_key(|m| format!("{m:?}"));
    want.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(got, want);
}

/// Measures restart time for 1M memberships (docs/performance.md). Run with
/// `cargo test -p rtm-server --release -- --ignored restart_time --nocapture`.
#[test]
#[ignore]
fn restart_time_for_a_million_memberships() {
    for (label, snapshot_after) in [("log only", u64::MAX / 2), ("snapshot", 4096)] {
        let dir = TempDir::new();
        let s = settings(&dir.0, FsyncPolicy::Off, snapshot_after, false);
        let state = open_state(&s).unwrap();
        for rid in 1..=10_000i64 {
            let uids: Vec<i64> = (0..100).map(|k| rid * 100 + k).collect();
            state.apply(Mutation::AddMembers { pid: 1, rid, uids, at_ms: 0 });
        }
        close(&state);
        drop(state);
        if snapshot_after == 4096 {
            // Reopen once so the long log is folded into a snapshot.
            close(&open_state(&s).unwrap());
        }
        let started = std::time::Instant::now();
        let back = open_state(&s).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(back.stats().1, 1_000_000);
        let size = dir_size(&dir.0);
        println!("restart with 1M memberships ({label}): {elapsed:?}, {size} bytes on disk");
        close(&back);
    }
}

/// A data directory written by release 0.1.0 (a snapshot and a log, every
/// kind of record) still loads.
#[test]
fn the_previous_release_data_dir_recovers() {
    use crate::model::{Mode, Role};
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-0.1.0");
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.0.join(path.file_name().unwrap())).unwrap();
    }
    let state = open_state(&settings(&dir.0, FsyncPolicy::Always, 1 << 20, false)).unwrap();
    let now = crate::clock::now_ms();
    assert_eq!(state.members(ROOM), vec![1, 3]);
    assert_eq!(state.room_info(ROOM), ("open".into(), "private".into()));
    assert!(!state.is_banned_in_room(1, 7, 4, now), "the room ban was lifted");
    assert!(state.is_banned_in_room(1, 8, 5, now));
    assert!(state.is_project_black(1, 6, now));
    let scheduled = RoomKey { pid: 1, rid: 100 };
    let schedule = state.schedule(scheduled).unwrap();
    assert_eq!(schedule.valid_until_ms, 4_102_444_800_000 + 900_000);
    assert!(schedule.auto_extend);
    assert_eq!(schedule.begin_ms, 1_700_000_001_000);
    let presenter = state.participant(scheduled, 10).unwrap();
    assert_eq!(
        (presenter.role, presenter.mode, presenter.joined_at_ms),
        (Role::Presenter, Mode::Neither, 1_700_000_001_000)
    );
    assert_eq!(state.participant(scheduled, 11).unwrap().role, Role::Consumer);
    assert_eq!(state.room_info(scheduled).0, "sched");
    assert_eq!(state.schedule(RoomKey { pid: 2, rid: 200 }).unwrap().max_seconds, 0);
    assert_eq!(state.members(RoomKey { pid: 2, rid: 200 }), vec![20, 21]);
    assert!(!state.room_exists(RoomKey { pid: 2, rid: 201 }), "released");
    close(&state);
}

/// A data directory from a newer release is refused with a clear message,
/// and left as it was, even with `--repair`.
#[test]
fn a_newer_format_is_refused_and_left_alone() {
    let dir = TempDir::new();
    let s = settings(&dir.0, FsyncPolicy::Always, 1 << 20, false);
    let state = open_state(&s).unwrap();
    state.apply(Mutation::AddMembers { pid: 1, rid: 7, uids: vec![1], at_ms: 0 });
    close(&state);
    drop(state);
    let wal = wal_files(&dir.0).pop().unwrap();
    let mut bytes = std::fs::read(&wal).unwrap();
    // Rewrite the first record as format 2, with a valid checksum.
    let len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    bytes[record::HEADER] = 2;
    let crc = crc32fast::hash(&bytes[record::HEADER..record::HEADER + len]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&wal, &bytes).unwrap();
    for repair in [false, true] {
        let err = open_state(&settings(&dir.0, FsyncPolicy::Always, 1 << 20, repair)).err().unwrap();
        assert!(matches!(err, StorageError::NewerFormat { found: 2, supported: 1, .. }), "{err}");
        assert!(err.to_string().contains("newer rtm-server"), "{err}");
        assert_eq!(std::fs::read(&wal).unwrap(), bytes, "nothing was cut");
    }
}

/// `removetoken` is durable: a revocation comes back after a restart, and
/// through a snapshot.
#[test]
fn token_revocations_survive_a_restart() {
    use crate::model::UserKey;
    let dir = TempDir::new();
    let s = settings(&dir.0, FsyncPolicy::Always, 1 << 20, false);
    let state = open_state(&s).unwrap();
    state.apply(Mutation::RevokeTokens { pid: 1, uid: 9, at_ms: 5_000 });
    state.apply(Mutation::RevokeTokens { pid: 1, uid: 9, at_ms: 4_000 });
    close(&state);
    drop(state);
    let back = open_state(&s).unwrap();
    assert_eq!(back.tokens_revoked_at(UserKey { pid: 1, uid: 9 }), Some(5_000), "the latest revocation counts");
    let snapshot = back.export();
    assert!(snapshot.contains(&Mutation::RevokeTokens { pid: 1, uid: 9, at_ms: 5_000 }));
    close(&back);
}
