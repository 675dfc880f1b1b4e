//! The write-ahead log and its group commit.
//!
//! Writers append an encoded record to a shared buffer while holding its
//! lock, and apply the mutation to memory under the same lock, so the log
//! order is the order in which changes were applied. One writer thread
//! takes the whole buffer, writes it, and (with `fsync = "always"`) syncs it
//! once for every record in it: concurrent writers share one fsync. It then
//! publishes the durable log sequence number; connections hold their answers
//! until it covers their writes.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::{snapshot, wal_path, FsyncPolicy, Persisted};
use crate::model::Mutation;

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// Sequence number of the last record appended.
    lsn: u64,
    shutdown: bool,
}

/// The log, shared by every writer.
pub(crate) struct Wal {
    pending: Mutex<Pending>,
    wake: Condvar,
    appended: AtomicU64,
    durable: watch::Sender<u64>,
    /// Set while writes are failing (e.g. a full disk).
    failing: AtomicBool,
    snapshot_running: AtomicBool,
    write_errors: prometheus::IntCounter,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Held open (and locked) until the log is closed.
    dir_lock: Mutex<Option<File>>,
}

/// Where and how the writer thread writes.
pub(crate) struct WriterSetup {
    pub(crate) dir: PathBuf,
    pub(crate) generation: u64,
    pub(crate) policy: FsyncPolicy,
    pub(crate) snapshot_after_bytes: u64,
    pub(crate) state: Arc<dyn Persisted>,
}

impl Wal {
    /// Opens a new log generation and starts its writer thread.
    pub(crate) fn start(
        setup: WriterSetup,
        dir_lock: File,
        write_errors: prometheus::IntCounter,
    ) -> std::io::Result<Arc<Self>> {
        let file = create_log(&setup.dir, setup.generation)?;
        let (durable, _) = watch::channel(0);
        let wal = Arc::new(Self {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            appended: AtomicU64::new(0),
            durable,
            failing: AtomicBool::new(false),
            snapshot_running: AtomicBool::new(false),
            write_errors,
            thread: Mutex::new(None),
            dir_lock: Mutex::new(Some(dir_lock)),
        });
        let writer = Writer { wal: wal.clone(), file, file_len: 0, setup, snapshot: None };
        let thread = std::thread::Builder::new().name("rtm-wal".into()).spawn(move || writer.run())?;
        *wal.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
        Ok(wal)
    }

    /// Applies a mutation with `apply` and logs it, atomically with respect
    /// to every other logged mutation.
    pub(crate) fn log<R>(&self, mutation: &Mutation, apply: impl FnOnce() -> R) -> R {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let result = apply();
        super::record::encode(mutation, &mut pending.buf);
        pending.lsn += 1;
        self.appended.store(pending.lsn, Ordering::Release);
        drop(pending);
        self.wake.notify_one();
        result
    }

    /// The last sequence number durable under the fsync policy.
    #[cfg(test)]
    pub(crate) fn durable(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Writes and syncs everything appended, then stops the writer thread.
    pub(crate) fn close(&self) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).shutdown = true;
        self.wake.notify_one();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
        // Nothing more is written: another server may take the directory.
        self.dir_lock.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl super::Durability for Wal {
    /// The last sequence number appended.
    fn appended(&self) -> u64 {
        self.appended.load(Ordering::Acquire)
    }

    /// A receiver to wait for durability on.
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Whether writes are failing right now.
    fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

fn create_log(dir: &std::path::Path, generation: u64) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(wal_path(dir, generation))?;
    super::sync_dir(dir)?;
    Ok(file)
}

struct Writer {
    wal: Arc<Wal>,
    file: File,
    file_len: u64,
    setup: WriterSetup,
    /// The snapshot being written, if any; joined before shutting down.
    snapshot: Option<JoinHandle<()>>,
}

impl Writer {
    fn run(mut self) {
        let policy = self.setup.policy;
        let mut unsynced = false;
        let mut last_sync = Instant::now();
        loop {
            let (buf, upto, shutdown) = {
                let mut pending = self.wal.pending.lock().unwrap_or_else(|e| e.into_inner());
                while pending.buf.is_empty() && !pending.shutdown {
                    let wait = match policy {
                        FsyncPolicy::Everysec if unsynced => {
                            Duration::from_secs(1).saturating_sub(last_sync.elapsed()).max(Duration::from_millis(1))
                        }
                        _ => Duration::from_secs(1),
                    };
                    pending = self.wal.wake.wait_timeout(pending, wait).unwrap_or_else(|e| e.into_inner()).0;
                    if unsynced && last_sync.elapsed() >= Duration::from_secs(1) {
                        break;
                    }
                }
                (std::mem::take(&mut pending.buf), pending.lsn, pending.shutdown)
            };
            if !buf.is_empty() {
                self.write_durably(&buf, policy == FsyncPolicy::Always);
                unsynced = policy != FsyncPolicy::Always;
                self.wal.durable.send_replace(upto);
            }
            if unsynced
                && (shutdown || (policy == FsyncPolicy::Everysec && last_sync.elapsed() >= Duration::from_secs(1)))
            {
                if let Err(e) = self.file.sync_data() {
                    error!(error = %e, "log fsync failed");
                    self.wal.write_errors.inc();
                }
                unsynced = false;
                last_sync = Instant::now();
            }
            if shutdown {
                if let Some(snapshot) = self.snapshot.take() {
                    let _ = snapshot.join();
                }
                return;
            }
            if self.file_len >= self.setup.snapshot_after_bytes && !self.wal.snapshot_running.load(Ordering::Relaxed) {
                self.rotate_and_snapshot();
            }
        }
    }

    /// Writes `buf` (and syncs it if `sync`), retrying until it succeeds:
    /// a record is never skipped, so nothing acknowledged can be lost. Gives
    /// up only at shutdown, when the quests waiting on it were all answered
    /// 20001 (never OK).
    fn write_durably(&mut self, buf: &[u8], sync: bool) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let result = self.file.write_all(buf).and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
            match result {
                Ok(()) => {
                    self.file_len += buf.len() as u64;
                    if self.wal.failing.swap(false, Ordering::Relaxed) {
                        info!("log writes work again");
                    }
                    return;
                }
                Err(e) => {
                    self.wal.write_errors.inc();
                    if !self.wal.failing.swap(true, Ordering::Relaxed) {
                        error!(error = %e, "log write failed; writes wait (and are answered 20001) until it works");
                    }
                    // Drop whatever part of the batch made it, so a retry does not duplicate it.
                    let _ = self.file.set_len(self.file_len);
                    if self.wal.pending.lock().unwrap_or_else(|e| e.into_inner()).shutdown {
                        error!(
                            bytes = buf.len(),
                            "shutting down with changes that could not be written (none was acknowledged)"
                        );
                        return;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Starts a new log generation and writes a snapshot for it in the
    /// background; once the snapshot is durable, older files are deleted.
    fn rotate_and_snapshot(&mut self) {
        let next = self.setup.generation + 1;
        let file = match self.file.sync_data().and_then(|()| create_log(&self.setup.dir, next)) {
            Ok(file) => file,
            Err(e) => {
                warn!(error = %e, "cannot start a new log file; will retry");
                self.wal.write_errors.inc();
                return;
            }
        };
        self.file = file;
        self.file_len = 0;
        self.setup.generation = next;
        let state = self.setup.state.clone();
        self.wal.snapshot_running.store(true, Ordering::Relaxed);
        let (wal, dir) = (self.wal.clone(), self.setup.dir.clone());
        let spawned = std::thread::Builder::new().name("rtm-snapshot".into()).spawn(move || {
            if let Err(e) = snapshot::write(&dir, next, &*state) {
                error!(error = %e, generation = next, "snapshot failed; the log keeps everything");
                wal.write_errors.inc();
            }
            wal.snapshot_running.store(false, Ordering::Relaxed);
        });
        match spawned {
            Ok(thread) => self.snapshot = Some(thread),
            Err(_) => self.wal.snapshot_running.store(false, Ordering::Relaxed),
        }
    }
}
