//! Group commit for history, as for the room-state log: senders queue
//! their rows (under the room's lock, so in the room's order) and go on;
//! one thread takes everything queued, writes it to the store as one batch,
//! persists the store's journal once for the whole batch (`fdatasync` under
//! `fsync = "always"`, a flush to the OS otherwise) and publishes how many
//! queued writes it covered. Connections hold the answers that acknowledge
//! writes until then.
//!
//! Senders never touch the store's journal: it is locked while it syncs,
//! and a sender waiting on it would stall its runtime thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, PersistMode};
use tokio::sync::watch;
use tracing::error;

use super::keys;
use crate::model::RoomKey;
use crate::storage::{Durability, FsyncPolicy};

/// A queued change to the store.
pub(super) enum Write {
    /// A new row.
    Row { room: RoomKey, id: i64, row: Vec<u8> },
    /// `delmsg`: looked up when its turn comes, so a row queued before it
    /// is found.
    Delete { room: RoomKey, from: i64, mid: i64 },
    /// A `meta` entry.
    Meta { key: [u8; 17], value: i64 },
}

/// The keyspaces writes go to.
pub(super) struct Target {
    pub(super) db: Database,
    pub(super) rows: Keyspace,
    pub(super) meta: Keyspace,
    /// Rows `delmsg` removed.
    pub(super) deleted: Arc<AtomicU64>,
}

#[derive(Default)]
struct Queue {
    writes: Vec<Write>,
    /// Writes queued so far.
    queued: u64,
    shutdown: bool,
    /// The writer thread is waiting for work (so a submit must wake it;
    /// otherwise it takes the queue when it is done, without a syscall).
    idle: bool,
}

/// The queue and the durability of history writes.
pub(crate) struct Writer {
    queue: Mutex<Queue>,
    wake: Condvar,
    queued: AtomicU64,
    /// Writes in the store and persisted under the policy.
    persisted: watch::Sender<u64>,
    failing: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub(super) fn start(target: Target, policy: Option<FsyncPolicy>) -> std::io::Result<Arc<Self>> {
        let (persisted, _) = watch::channel(0);
        let writer = Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            queued: AtomicU64::new(0),
            persisted,
            failing: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let runner = writer.clone();
        let thread =
            std::thread::Builder::new().name("rtm-history".into()).spawn(move || runner.run(&target, policy))?;
        *writer.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
        Ok(writer)
    }

    /// Queues a write; it reaches the store in queue order.
    pub(super) fn submit(&self, write: Write) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.writes.push(write);
        queue.queued += 1;
        self.queued.store(queue.queued, Ordering::Release);
        let idle = std::mem::take(&mut queue.idle);
        drop(queue);
        if idle {
            self.wake.notify_one();
        }
    }

    /// Blocks until everything queued so far is in the store (or writes fail).
    pub(super) fn wait_written(&self) {
        let target = self.queued.load(Ordering::Acquire);
        let mut persisted = self.persisted.subscribe();
        while *persisted.borrow_and_update() < target && !self.failing.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Writes and persists everything queued, then stops the thread.
    pub(super) fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).shutdown = true;
        self.wake.notify_all();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }

    fn run(&self, target: &Target, policy: Option<FsyncPolicy>) {
        let mut last_sync = Instant::now();
        let mut unsynced = false;
        loop {
            let (writes, upto, shutdown) = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                while queue.writes.is_empty() && !queue.shutdown {
                    queue.idle = true;
                    queue =
                        self.wake.wait_timeout(queue, Duration::from_millis(200)).unwrap_or_else(|e| e.into_inner()).0;
                    queue.idle = false;
                    if unsynced && last_sync.elapsed() >= Duration::from_secs(1) {
                        break;
                    }
                }
                (std::mem::take(&mut queue.writes), queue.queued, queue.shutdown)
            };
            if !writes.is_empty() {
                if let Err(e) = apply(target, writes) {
                    self.fail(&e);
                }
            }
            let sync_now = match policy {
                Some(FsyncPolicy::Always) => true,
                Some(FsyncPolicy::Everysec) => shutdown || last_sync.elapsed() >= Duration::from_secs(1),
                Some(FsyncPolicy::Off) => shutdown,
                None => false,
            };
            // The journal's size is fixed (fjall preallocates it), so
            // fdatasync covers what a read after a crash needs.
            let mode = if sync_now { PersistMode::SyncData } else { PersistMode::Buffer };
            match target.db.persist(mode) {
                Ok(()) if !self.failing.load(Ordering::Relaxed) => {
                    if sync_now {
                        last_sync = Instant::now();
                    }
                    unsynced = !sync_now && policy == Some(FsyncPolicy::Everysec);
                    self.persisted.send_if_modified(|n| {
                        let moved = *n < upto;
                        *n = (*n).max(upto);
                        moved
                    });
                }
                Ok(()) => {}
                Err(e) => self.fail(&e),
            }
            if shutdown {
                return;
            }
        }
    }

    fn fail(&self, e: &fjall::Error) {
        // fjall refuses every write after a failed one: the waiting answers
        // become errors (see the pump), and so do all later writes.
        if !self.failing.swap(true, Ordering::Relaxed) {
            error!(error = %e, "history write failed; history writes fail until a restart");
        }
    }
}

/// Writes one batch; a `delmsg` first commits what came before it, so its
/// lookup sees rows queued ahead of it.
fn apply(target: &Target, writes: Vec<Write>) -> Result<(), fjall::Error> {
    let mut batch = target.db.batch();
    for write in writes {
        match write {
            Write::Row { room, id, row } => batch.insert(&target.rows, keys::row_key(room, id), row),
            Write::Delete { room, from, mid } => {
                if !batch.is_empty() {
                    std::mem::replace(&mut batch, target.db.batch()).commit()?;
                }
                for guard in target.rows.prefix(keys::room_prefix(room)).rev() {
                    let (key, row) = guard.into_inner()?;
                    if keys::row_sender(&row) == Some((from, mid)) {
                        batch.remove(&target.rows, key);
                        target.deleted.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            Write::Meta { key, value } => batch.insert(&target.meta, key, keys::encode_i64(value)),
        }
    }
    if !batch.is_empty() {
        batch.commit()?;
    }
    Ok(())
}

impl Durability for Writer {
    fn appended(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.persisted.subscribe()
    }

    fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}
