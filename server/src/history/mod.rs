//! Room message history, in an embedded LSM store (`fjall`).
//!
//! Every accepted room message is written here under its room's lock, with
//! the next id of the room, before it is delivered; so a room's ids follow
//! the order its receivers saw. Writes go to the store's journal at once
//! (and are readable at once); [`sync`] makes them durable in groups under
//! `storage.fsync`, and connections hold the answers that acknowledge them
//! until then, as they do for the room-state log. See docs/architecture.md
//! for why an LSM, and why `fjall`.
//!
//! Retention (age, messages per room, released rooms) is applied twice:
//! queries never return a row past it, and [`sweep`] removes such rows from
//! disk in the background, from the head of each room's range.

mod keys;
mod query;
mod sweep;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use fjall::{Database, Keyspace, KeyspaceCreateOptions};

pub(crate) use keys::StoredMessage;
pub(crate) use query::{Counted, PageQuery};
pub(crate) use writer::Writer;

use crate::config::{HistoryConfig, ProjectConfig};
use crate::model::{RoomKey, RoomMessage};
use crate::storage::FsyncPolicy;

/// Memtable size of the rows: what a restart replays from the journal at most.
const MEMTABLE_BYTES: u64 = 16 * 1024 * 1024;

/// Why history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HistoryError {
    #[error("history store: {0}")]
    Store(#[from] fjall::Error),
    #[error(transparent)]
    Row(#[from] keys::RowError),
    #[error("history sync thread: {0}")]
    Io(#[from] std::io::Error),
}

/// How long and how much a project's history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retention {
    pub(crate) max_age_ms: i64,
    pub(crate) max_per_room: i64,
    pub(crate) keep_released: bool,
}

/// Every project's retention (`[history]`, and `history` in `[[projects]]`)
/// and the page cap: what both engines' history follows.
#[derive(Debug, Clone)]
pub(crate) struct RetentionRules {
    default: Retention,
    per_project: HashMap<i64, Retention>,
    /// The most rows a page holds.
    pub(crate) max_page: usize,
}

impl RetentionRules {
    pub(crate) fn new(config: &HistoryConfig, projects: &[ProjectConfig]) -> Self {
        let default = Retention {
            max_age_ms: (config.max_age_secs as i64).saturating_mul(1000),
            max_per_room: config.max_per_room.min(i64::MAX as u64) as i64,
            keep_released: config.keep_released,
        };
        let per_project = projects
            .iter()
            .filter_map(|p| {
                let o = p.history?;
                Some((
                    p.pid,
                    Retention {
                        max_age_ms: o.max_age_secs.map_or(default.max_age_ms, |s| (s as i64).saturating_mul(1000)),
                        max_per_room: o.max_per_room.map_or(default.max_per_room, |n| n.min(i64::MAX as u64) as i64),
                        keep_released: o.keep_released.unwrap_or(default.keep_released),
                    },
                ))
            })
            .collect();
        Self { default, per_project, max_page: config.max_page.max(1) as usize }
    }

    /// Project `pid`'s retention.
    pub(crate) fn of(&self, pid: i64) -> Retention {
        self.per_project.get(&pid).copied().unwrap_or(self.default)
    }
}

/// A room's place in its history, kept in memory once the room is used.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    /// The highest id given out (rows up to it are in the store).
    last_id: i64,
    /// Rows up to this id belong to a released room and are being dropped.
    dropped_through: i64,
}

/// The history store, shared by every connection.
pub(crate) struct History {
    db: Database,
    rows: Keyspace,
    meta: Keyspace,
    cursors: DashMap<RoomKey, Cursor>,
    rules: RetentionRules,
    /// Queues writes and makes them durable.
    writer: Arc<Writer>,
    pub(crate) stats: Stats,
}

/// Counters for metrics.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) stored: AtomicU64,
    pub(crate) deleted: Arc<AtomicU64>,
    pub(crate) expired: AtomicU64,
}

/// Where the store lives and how it syncs.
pub(crate) enum Location<'a> {
    /// `<data_dir>/history`, synced under the fsync policy.
    Dir(&'a Path, FsyncPolicy),
    /// A temporary directory, removed when the store closes.
    Temporary,
}

impl History {
    /// Opens (or creates) the store, recovering its journal.
    pub(crate) fn open(
        location: Location<'_>,
        config: &HistoryConfig,
        projects: &[ProjectConfig],
    ) -> Result<Arc<Self>, HistoryError> {
        Self::open_tuned(location, config, projects, MEMTABLE_BYTES)
    }

    /// [`open`](Self::open) with the memtable size (tests make it small, to
    /// show what flushes and compactions do with little data).
    pub(crate) fn open_tuned(
        location: Location<'_>,
        config: &HistoryConfig,
        projects: &[ProjectConfig],
        memtable_bytes: u64,
    ) -> Result<Arc<Self>, HistoryError> {
        let (path, policy, temporary) = match location {
            Location::Dir(dir, policy) => (dir.join("history"), Some(policy), false),
            Location::Temporary => (temporary_dir(), None, true),
        };
        let db = Database::builder(&path)
            .cache_size(config.cache_mib.saturating_mul(1024 * 1024))
            // Group commit: the writer thread persists the journal for many writes at once.
            .manual_journal_persist(true)
            .temporary(temporary)
            .open()?;
        let rows = db.keyspace("rows", || KeyspaceCreateOptions::default().max_memtable_size(memtable_bytes))?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
        let rules = RetentionRules::new(config, projects);
        let stats = Stats::default();
        let target =
            writer::Target { db: db.clone(), rows: rows.clone(), meta: meta.clone(), deleted: stats.deleted.clone() };
        let writer = Writer::start(target, policy)?;
        Ok(Arc::new(Self { db, rows, meta, cursors: DashMap::new(), rules, writer, stats }))
    }

    /// What to wait on before acknowledging a write: the writer has put it
    /// in the store (and persisted it, under the fsync policy).
    pub(crate) fn writer(&self) -> &Arc<Writer> {
        &self.writer
    }

    /// Blocks until every write queued so far is in the store.
    pub(crate) fn wait_written(&self) {
        self.writer.wait_written();
    }

    /// Bytes the store takes on disk.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }

    pub(crate) fn retention(&self, pid: i64) -> Retention {
        self.rules.of(pid)
    }

    /// The most rows a page holds.
    pub(crate) fn max_page(&self) -> usize {
        self.rules.max_page
    }

    /// Queues an accepted message (its `mtime` set) for the store under the
    /// next id of its room, and returns the id. The caller holds the room's
    /// lock, so ids and the queue follow the room's delivery order.
    pub(crate) fn append(&self, message: &RoomMessage) -> Result<i64, HistoryError> {
        let room = RoomKey { pid: message.pid, rid: message.rid };
        let mut cursor = self.cursor_mut(room)?;
        let id = cursor.last_id + 1;
        let row =
            keys::encode_row(message.from, message.mtype, message.mid, message.mtime, &message.body, &message.attrs);
        self.writer.submit(writer::Write::Row { room, id, row });
        cursor.last_id = id;
        drop(cursor);
        self.stats.stored.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Deletes one message, if history has it.
    pub(crate) fn delete(&self, room: RoomKey, from: i64, mid: i64) {
        self.writer.submit(writer::Write::Delete { room, from, mid });
    }

    /// A released room: unless its project keeps released rooms' history,
    /// its rows vanish now and leave the disk at the next sweep.
    pub(crate) fn room_released(&self, room: RoomKey) -> Result<(), HistoryError> {
        if self.retention(room.pid).keep_released {
            return Ok(());
        }
        let mut cursor = self.cursor_mut(room)?;
        if cursor.last_id == cursor.dropped_through {
            return Ok(());
        }
        cursor.dropped_through = cursor.last_id;
        let key = keys::meta_key(room, keys::META_DROPPED_THROUGH);
        self.writer.submit(writer::Write::Meta { key, value: cursor.last_id });
        Ok(())
    }

    /// The last id given out in `room` (0 before its first message).
    pub(crate) fn last_id(&self, room: RoomKey) -> Result<i64, HistoryError> {
        Ok(self.cursor(room)?.last_id)
    }

    /// Closes the store: everything written is persisted.
    pub(crate) fn close(&self) {
        self.writer.close();
    }

    fn cursor_mut(&self, room: RoomKey) -> Result<dashmap::mapref::one::RefMut<'_, RoomKey, Cursor>, HistoryError> {
        if let Some(cursor) = self.cursors.get_mut(&room) {
            return Ok(cursor);
        }
        // Read outside the map's lock; a concurrent loader reads the same.
        let loaded = self.load_cursor(room)?;
        Ok(self.cursors.entry(room).or_insert(loaded))
    }

    fn cursor(&self, room: RoomKey) -> Result<Cursor, HistoryError> {
        if let Some(cursor) = self.cursors.get(&room) {
            return Ok(*cursor);
        }
        Ok(*self.cursor_mut(room)?)
    }

    /// A room's cursor as the store has it: its newest row, or the highest
    /// id it had before its rows were swept away.
    fn load_cursor(&self, room: RoomKey) -> Result<Cursor, HistoryError> {
        let newest_row = match self.rows.prefix(keys::room_prefix(room)).next_back() {
            Some(guard) => keys::parse_row_key(&guard.key()?).map_or(0, |(_, id)| id),
            None => 0,
        };
        let meta = |tag| -> Result<i64, HistoryError> {
            Ok(self.meta.get(keys::meta_key(room, tag))?.and_then(|v| keys::decode_i64(&v)).unwrap_or(0))
        };
        let dropped_through = meta(keys::META_DROPPED_THROUGH)?;
        let last_id = newest_row.max(meta(keys::META_LAST_ID)?).max(dropped_through);
        Ok(Cursor { last_id, dropped_through })
    }
}

fn temporary_dir() -> PathBuf {
    let unique = format!(
        "rtm-history-{}-{}",
        std::process::id(),
        crate::clock::now_ms().wrapping_mul(1000) + i64::from(rand_suffix())
    );
    std::env::temp_dir().join(unique)
}

/// A few bits that differ between stores opened in one millisecond.
fn rand_suffix() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed) as u16
}
