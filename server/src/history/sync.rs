//! Group commit for history: writers put their rows in the store's journal
//! at once and bump a counter; one thread persists the journal for every
//! write so far (fsync under `always`, a flush to the OS otherwise) and
//! publishes the count it covered. Connections hold the answers that
//! acknowledge writes until that count reaches them, as for the room-state
//! log.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fjall::{Database, PersistMode};
use tokio::sync::watch;
use tracing::error;

use crate::storage::{Durability, FsyncPolicy};

/// The durability of history writes.
pub(crate) struct Durable {
    /// Writes made so far.
    written: AtomicU64,
    /// Writes persisted under the policy.
    persisted: watch::Sender<u64>,
    failing: AtomicBool,
    wake: Condvar,
    state: Mutex<SyncState>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct SyncState {
    /// A write is waiting to be persisted.
    pending: bool,
    shutdown: bool,
}

impl Durable {
    pub(super) fn start(db: Database, policy: FsyncPolicy) -> std::io::Result<Arc<Self>> {
        let (persisted, _) = watch::channel(0);
        let durable = Arc::new(Self {
            written: AtomicU64::new(0),
            persisted,
            failing: AtomicBool::new(false),
            wake: Condvar::new(),
            state: Mutex::new(SyncState::default()),
            thread: Mutex::new(None),
        });
        let runner = durable.clone();
        let thread =
            std::thread::Builder::new().name("rtm-history-sync".into()).spawn(move || runner.run(&db, policy))?;
        *durable.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
        Ok(durable)
    }

    /// Notes a write that is in the journal (called after it is).
    pub(super) fn wrote(&self) {
        self.written.fetch_add(1, Ordering::Release);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.pending {
            state.pending = true;
            self.wake.notify_one();
        }
    }

    /// Persists everything written, then stops the thread.
    pub(super) fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).shutdown = true;
        self.wake.notify_one();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }

    fn run(&self, db: &Database, policy: FsyncPolicy) {
        let mut last_sync = Instant::now();
        let mut unsynced = false;
        loop {
            let shutdown = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                while !state.pending && !state.shutdown {
                    let timeout = if unsynced { Duration::from_millis(200) } else { Duration::from_secs(1) };
                    state = self.wake.wait_timeout(state, timeout).unwrap_or_else(|e| e.into_inner()).0;
                    if unsynced && last_sync.elapsed() >= Duration::from_secs(1) {
                        break;
                    }
                }
                state.pending = false;
                state.shutdown
            };
            // Read before persisting: every write counted here is in the journal.
            let target = self.written.load(Ordering::Acquire);
            let sync_now = policy == FsyncPolicy::Always
                || shutdown
                || (policy == FsyncPolicy::Everysec && last_sync.elapsed() >= Duration::from_secs(1));
            let mode = if sync_now { PersistMode::SyncAll } else { PersistMode::Buffer };
            match db.persist(mode) {
                Ok(()) => {
                    if sync_now {
                        last_sync = Instant::now();
                        unsynced = false;
                    } else {
                        unsynced = policy == FsyncPolicy::Everysec;
                    }
                    self.persisted.send_if_modified(|n| {
                        let moved = *n < target;
                        *n = (*n).max(target);
                        moved
                    });
                }
                Err(e) => {
                    // fjall refuses every write after a failed persist: the
                    // waiting answers become errors (see the pump).
                    if !self.failing.swap(true, Ordering::Relaxed) {
                        error!(error = %e, "history persist failed; history writes fail until a restart");
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if shutdown {
                return;
            }
        }
    }
}

impl Durability for Durable {
    fn appended(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.persisted.subscribe()
    }

    fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}
