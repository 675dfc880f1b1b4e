//! The retention sweep: removes from disk the rows no query returns any
//! more (too old, beyond a room's newest `max_per_room`, or of a released
//! room being dropped). It walks the rooms in key order, one seek per room,
//! and deletes from the head of each room's range, where old rows are, in
//! batches, so disk use stays bounded under a steady send rate.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{keys, Cursor, History, HistoryError};
use crate::model::RoomKey;

/// Deletes committed together.
const BATCH: usize = 1024;

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Swept {
    pub(crate) rooms: u64,
    pub(crate) rows: u64,
}

impl History {
    /// Sweeps every `every` until `stop`.
    pub(crate) async fn sweep_task(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.cancelled() => return,
            }
            let history = self.clone();
            match tokio::task::spawn_blocking(move || history.sweep(crate::clock::now_ms())).await {
                Ok(Ok(swept)) if swept.rows > 0 => debug!(rooms = swept.rooms, rows = swept.rows, "history swept"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(error = %e, "history sweep failed; retried at the next one"),
                Err(e) => warn!(error = %e, "history sweep panicked"),
            }
        }
    }

    /// Removes every row past its room's retention at `now_ms`.
    pub(crate) fn sweep(&self, now_ms: i64) -> Result<Swept, HistoryError> {
        let mut swept = Swept::default();
        let mut from: Vec<u8> = Vec::new();
        loop {
            let Some(first) = self.rows.range(from.as_slice()..).next() else { break };
            let key = first.key()?;
            let Some((room, _)) = keys::parse_row_key(&key) else { break };
            swept.rooms += 1;
            swept.rows += self.sweep_room(room, now_ms)?;
            match keys::next_room_prefix(room) {
                Some(next) => from = next.to_vec(),
                None => break,
            }
        }
        self.stats.expired.fetch_add(swept.rows, Ordering::Relaxed);
        Ok(swept)
    }

    fn sweep_room(&self, room: RoomKey, now_ms: i64) -> Result<u64, HistoryError> {
        // The store's view, not the cache's: a room need not be in memory.
        let cursor = match self.cursors.get(&room) {
            Some(cursor) => *cursor,
            None => self.load_cursor(room)?,
        };
        let Cursor { last_id, dropped_through } = cursor;
        let retention = self.retention(room.pid);
        let floor = last_id.saturating_sub(retention.max_per_room).max(dropped_through);
        let oldest = now_ms.saturating_sub(retention.max_age_ms);
        let mut batch = self.db.batch();
        let mut removed = 0u64;
        let mut emptied = true;
        for guard in self.rows.prefix(keys::room_prefix(room)) {
            let (key, value) = guard.into_inner()?;
            let Some((_, id)) = keys::parse_row_key(&key) else { continue };
            let row = keys::decode_row(id, &value)?;
            if id > floor && row.mtime >= oldest {
                emptied = false;
                break;
            }
            batch.remove(&self.rows, key);
            removed += 1;
            if batch.len() >= BATCH {
                std::mem::replace(&mut batch, self.db.batch()).commit()?;
            }
        }
        if emptied && removed > 0 {
            // Ids never repeat, even once a room's rows are all gone.
            batch.insert(&self.meta, keys::meta_key(room, keys::META_LAST_ID), keys::encode_i64(last_id));
        }
        if dropped_through > 0 && floor >= dropped_through {
            batch.remove(&self.meta, keys::meta_key(room, keys::META_DROPPED_THROUGH));
        }
        if !batch.is_empty() {
            // Persisted with the writer's next batch: losing a sweep's
            // deletes to a crash only means sweeping them again.
            batch.commit()?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{History, Location, PageQuery};
    use crate::config::Config;
    use crate::model::{Body, RoomKey, RoomMessage};

    fn message(rid: i64, mid: i64, mtime: i64) -> RoomMessage {
        RoomMessage {
            pid: 1,
            rid,
            from: 7,
            mid,
            mtype: 51,
            body: Body::Text(format!("m{mid}")),
            attrs: String::new(),
            mtime,
        }
    }

    fn store(max_per_room: u64, keep_released: bool) -> std::sync::Arc<History> {
        let mut config = Config::default().history;
        config.max_per_room = max_per_room;
        config.max_age_secs = 60;
        config.keep_released = keep_released;
        History::open(Location::Temporary, &config, &[]).unwrap()
    }

    fn ids(history: &History, rid: i64, now: i64) -> Vec<i64> {
        let query = PageQuery { desc: false, num: 20, ..PageQuery::default() };
        history.page(RoomKey { pid: 1, rid }, &query, now).unwrap().iter().map(|m| m.id).collect()
    }

    #[test]
    fn the_sweep_removes_what_queries_already_hide() {
        let history = store(3, true);
        let now = 1_000_000;
        for (mid, age_ms) in [(1, 100_000), (2, 90_000), (3, 61_000), (4, 10_000), (5, 5_000)] {
            history.append(&message(1, mid, now - age_ms)).unwrap();
        }
        history.append(&message(2, 1, now - 61_000)).unwrap();
        history.wait_written();
        // Room 1: ids 3..5 are the newest three; id 3 is 61 s old, past the 60 s age.
        assert_eq!(ids(&history, 1, now), vec![4, 5]);
        assert_eq!(ids(&history, 2, now), Vec::<i64>::new());
        let swept = history.sweep(now).unwrap();
        assert_eq!(swept.rows, 4, "{swept:?}");
        assert_eq!(ids(&history, 1, now), vec![4, 5]);
        assert!(history.rows.prefix(super::keys::room_prefix(RoomKey { pid: 1, rid: 2 })).next().is_none());
        // Ids go on from the highest, even for a room swept empty and forgotten.
        history.cursors.clear();
        assert_eq!(history.append(&message(2, 2, now)).unwrap(), 2);
        history.wait_written();
        assert_eq!(history.find(RoomKey { pid: 1, rid: 1 }, 7, 5, now).unwrap().map(|m| m.id), Some(5));
        assert_eq!(history.find(RoomKey { pid: 1, rid: 1 }, 7, 2, now).unwrap(), None);
    }

    #[test]
    fn a_released_room_is_dropped_or_kept() {
        let now = 1_000_000;
        for keep in [true, false] {
            let history = store(500, keep);
            history.append(&message(1, 1, now)).unwrap();
            history.room_released(RoomKey { pid: 1, rid: 1 }).unwrap();
            history.append(&message(1, 2, now)).unwrap();
            history.wait_written();
            let expected = if keep { vec![1, 2] } else { vec![2] };
            assert_eq!(ids(&history, 1, now), expected);
            history.sweep(now).unwrap();
            history.cursors.clear();
            assert_eq!(ids(&history, 1, now), expected, "after the sweep, from the store");
        }
    }

    /// Under a steady send rate, disk use levels off at what retention
    /// keeps plus what flushes and compactions have not yet reclaimed.
    #[test]
    fn disk_use_stays_bounded_under_a_steady_send_rate() {
        const ROUNDS: usize = 20;
        let dir = std::env::temp_dir().join(format!("rtm-history-bound-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = Config::default().history;
        config.max_per_room = 50;
        let location = Location::Dir(&dir, crate::storage::FsyncPolicy::Off);
        let history = History::open_tuned(location, &config, &[], 256 * 1024).unwrap();
        let body = Body::Text("x".repeat(400));
        let mut sizes = Vec::new();
        let mut mid = 0;
        for _round in 0..ROUNDS {
            for _ in 0..5_000 {
                mid += 1;
                let message = RoomMessage { mid, body: body.clone(), ..message(mid % 20, mid, 1_000) };
                history.append(&message).unwrap();
            }
            history.wait_written();
            history.sweep(1_000).unwrap();
            sizes.push((history.rows.disk_space(), history.disk_bytes()));
        }
        let written = ROUNDS as u64 * 5_000 * 400;
        eprintln!("(tables, all with the journal) after each round of 2 MB: {sizes:?}");
        // Compactions come when they come: compare peaks, not single rounds.
        let half = ROUNDS / 2;
        for part in [|s: &(u64, u64)| s.0, |s: &(u64, u64)| s.1] {
            let peak_early = sizes[..half].iter().map(part).max().unwrap();
            let peak_late = sizes[half..].iter().map(part).max().unwrap();
            assert!(peak_late <= peak_early * 2, "disk use keeps growing: {sizes:?}");
        }
        let tables = sizes[half..].iter().map(|s| s.0).max().unwrap();
        assert!(tables < written / 4, "the tables are not bounded by retention: {sizes:?}");
        drop(history);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
