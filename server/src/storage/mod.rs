//! Durability: a write-ahead log of mutations with group commit, plus
//! snapshots that bound restart time.
//!
//! The log is fed from the same `Mutation` stream every change goes
//! through (see `commit`), so nothing is persisted by a second copy of the
//! logic. Storage knows only `Mutation` and the `Persisted` interface,
//! not the state that implements it. Files in the data directory:
//!
//! - `wal-<generation>.log`: CRC-framed records (`record.rs`);
//! - `snapshot-<generation>.snap`: the whole state, from which `wal-<generation>`
//!   and later generations are replayed.
//!
//! Recovery loads the newest snapshot and replays the logs after it. A
//! torn record at the very end of the last log (a crash mid-write) is cut
//! off with a warning. Damage anywhere else stops start-up with the file
//! and offset, unless `storage.repair` is set, which cuts the damaged log
//! at that point and carries on.

mod record;
mod snapshot;
mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

pub(crate) use wal::Wal;

use crate::model::Mutation;
use record::Read;

/// Something whose writes an answer must wait for: the room-state log, and
/// the history store. A connection holds its answers until every source's
/// durable count reaches what was written when it flushes.
pub(crate) trait Durability: Send + Sync {
    /// Writes made so far.
    fn appended(&self) -> u64;
    /// The count of durable writes, as it moves.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Whether writes are failing right now.
    fn is_failing(&self) -> bool;
}

/// When an acknowledged change is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Synced before the answer: a crash of the process or the machine
    /// loses nothing acknowledged.
    Always,
    /// Written before the answer, synced once a second: a process crash
    /// loses nothing; a machine crash loses up to a second.
    Everysec,
    /// Written before the answer, synced when the OS decides: a process
    /// crash loses nothing; a machine crash loses what the OS had not written.
    Off,
}

/// What storage needs of the state it persists.
pub(crate) trait Persisted: Send + Sync + 'static {
    /// Applies a recovered mutation to memory (it is not logged again).
    fn restore(&self, mutation: &Mutation);
    /// The whole state as mutations that rebuild it (for snapshots); `None`
    /// once the state is gone, at shutdown.
    fn export(&self) -> Option<Vec<Mutation>>;
}

/// Why storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file could not be read or written.
    #[error("storage: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory was written by a newer release. Nothing is cut
    /// or changed, whatever `--repair` says.
    #[error(
        "storage: {path} holds records in format {found}, written by a newer rtm-server; this build reads \
         format {supported} and older. Run the newer release on this data directory (nothing was changed)"
    )]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The format found.
        found: u8,
        /// The newest format this build reads.
        supported: u8,
    },
    /// A log or snapshot is damaged in a way a crash cannot explain.
    #[error(
        "storage: {path} is corrupt at byte offset {offset}: {reason}; \
         start with --repair to cut the file there (losing what follows)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Storage settings (`[storage]`).
pub(crate) struct StorageSettings<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) policy: FsyncPolicy,
    pub(crate) snapshot_after_bytes: u64,
    pub(crate) repair: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Wal,
    Snapshot,
}

fn wal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("wal-{generation:020}.log"))
}

fn snapshot_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("snapshot-{generation:020}.snap"))
}

/// The log and snapshot files in `dir`, sorted by generation.
fn list(dir: &Path) -> std::io::Result<Vec<(Kind, u64)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // Only regular files are ours to read (a device would never end).
        if !std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let parsed = if let Some(g) = name.strip_prefix("wal-").and_then(|n| n.strip_suffix(".log")) {
            g.parse().ok().map(|g| (Kind::Wal, g))
        } else if let Some(g) = name.strip_prefix("snapshot-").and_then(|n| n.strip_suffix(".snap")) {
            g.parse().ok().map(|g| (Kind::Snapshot, g))
        } else {
            None
        };
        found.extend(parsed);
    }
    found.sort_by_key(|&(kind, g)| (g, kind == Kind::Wal));
    Ok(found)
}

/// Makes a rename or file creation in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A crash while writing a snapshot leaves a `.tmp` file; it was never
/// renamed into place, so nothing refers to it.
fn remove_unfinished_snapshots(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("snapshot-"))
            && path.extension().is_some_and(|e| e == "tmp")
        {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// What recovery did.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    pub(crate) records: usize,
    pub(crate) log_bytes: u64,
}

/// Loads the data directory into `state`, then starts a new log generation
/// whose writer persists every later mutation. Returns the log.
pub(crate) fn open(
    settings: &StorageSettings<'_>,
    state: Arc<dyn Persisted>,
    write_errors: prometheus::IntCounter,
) -> Result<Arc<Wal>, StorageError> {
    let dir = settings.dir;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StorageError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let lock_path = dir.join("LOCK");
    let dir_lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    match dir_lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StorageError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::other("another rtm-server is using this data directory"),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(StorageError::Io { path: lock_path, source: e }),
    }
    remove_unfinished_snapshots(dir).map_err(io(dir))?;
    let started = std::time::Instant::now();
    let files = list(dir).map_err(io(dir))?;
    let snapshot = files.iter().rev().find(|(k, _)| *k == Kind::Snapshot).map(|&(_, g)| g);
    let mut recovered = Recovered::default();
    if let Some(g) = snapshot {
        let path = snapshot_path(dir, g);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        replay(&path, &bytes, &*state, false, &mut recovered)?;
    }
    let logs: Vec<u64> =
        files.iter().filter(|(k, g)| *k == Kind::Wal && snapshot.is_none_or(|s| *g >= s)).map(|&(_, g)| g).collect();
    for (i, &g) in logs.iter().enumerate() {
        let path = wal_path(dir, g);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let last = i + 1 == logs.len();
        let good = match replay(&path, &bytes, &*state, last, &mut recovered) {
            Ok(good) => good,
            Err(StorageError::Corrupt { offset, reason, .. }) if settings.repair => {
                warn!(path = %path.display(), offset, %reason, "repair: cutting the log at the damage");
                offset
            }
            Err(e) => return Err(e),
        };
        if good < bytes.len() {
            let file = std::fs::OpenOptions::new().write(true).open(&path).map_err(io(&path))?;
            file.set_len(good as u64).and_then(|()| file.sync_all()).map_err(io(&path))?;
        }
        recovered.log_bytes += good as u64;
    }
    let generation = files.iter().map(|&(_, g)| g).max().map_or(1, |g| g + 1);
    if recovered.records > 0 {
        info!(
            records = recovered.records,
            log_bytes = recovered.log_bytes,
            elapsed = ?started.elapsed(),
            "state recovered from {}",
            dir.display()
        );
    }
    // A long log makes the next restart slow: snapshot it away now.
    if recovered.log_bytes > settings.snapshot_after_bytes {
        snapshot::write(dir, generation, &*state).map_err(io(dir))?;
    }
    let setup = wal::WriterSetup {
        dir: dir.to_path_buf(),
        generation,
        policy: settings.policy,
        snapshot_after_bytes: settings.snapshot_after_bytes,
        state,
    };
    Wal::start(setup, dir_lock, write_errors).map_err(io(dir))
}

/// Applies every record of one file; returns how many bytes were good.
/// A torn tail is allowed (and reported) only where `tail_ok`.
fn replay(
    path: &Path,
    bytes: &[u8],
    state: &dyn Persisted,
    tail_ok: bool,
    recovered: &mut Recovered,
) -> Result<usize, StorageError> {
    let mut at = 0;
    loop {
        match record::read(bytes, at) {
            Read::Record(mutation, next) => {
                state.restore(&mutation);
                recovered.records += 1;
                at = next;
            }
            Read::End => return Ok(at),
            Read::NewerVersion(found) => {
                return Err(StorageError::NewerFormat { path: path.to_path_buf(), found, supported: record::VERSION })
            }
            Read::Truncated if tail_ok => {
                warn!(path = %path.display(), offset = at, "torn record at the end of the log (a crash mid-write): cut off");
                return Ok(at);
            }
            Read::Corrupt(reason) if tail_ok && !valid_record_after(bytes, at) => {
                warn!(path = %path.display(), offset = at, %reason, "damaged record at the end of the log: cut off");
                return Ok(at);
            }
            Read::Truncated => {
                return Err(StorageError::Corrupt {
                    path: path.to_path_buf(),
                    offset: at,
                    reason: "record cut short".into(),
                })
            }
            Read::Corrupt(reason) => {
                return Err(StorageError::Corrupt { path: path.to_path_buf(), offset: at, reason })
            }
        }
    }
}

/// Whether any valid record starts after `at`: if so, the damage is in the
/// middle of the log, not a torn tail.
fn valid_record_after(bytes: &[u8], at: usize) -> bool {
    (at + 1..bytes.len()).any(|offset| matches!(record::read(bytes, offset), Read::Record(..)))
}

#[cfg(test)]
mod tests;
