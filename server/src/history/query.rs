//! Reading history: pages, counts, a room's newest message, one message by
//! its sender's `mid`. Every read sees only rows inside the room's
//! retention, whether or not the sweep has removed the others yet.

use super::{keys, Cursor, History, HistoryError, StoredMessage};
use crate::model::RoomKey;

/// A page request, as `getroommsg` has it (after its checks).
#[derive(Debug, Clone, Default)]
pub(crate) struct PageQuery {
    pub(crate) desc: bool,
    pub(crate) num: usize,
    /// Inclusive `mtime` bounds; 0 = unbounded.
    pub(crate) begin: i64,
    pub(crate) end: i64,
    /// The previous page's last id, exclusive; 0 = none.
    pub(crate) lastid: i64,
    /// Empty = every mtype.
    pub(crate) mtypes: Vec<i64>,
}

/// What a count found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counted {
    pub(crate) messages: i64,
    pub(crate) senders: i64,
}

/// The ids and times a room's reader may see.
struct Visible {
    /// Ids in `(floor, last]`.
    floor: i64,
    last: i64,
    /// `mtime` in `[oldest, newest]`.
    oldest: i64,
    newest: i64,
}

impl History {
    fn visible(&self, room: RoomKey, cursor: Cursor, now_ms: i64) -> Visible {
        let retention = self.retention(room.pid);
        Visible {
            floor: cursor.last_id.saturating_sub(retention.max_per_room).max(cursor.dropped_through),
            last: cursor.last_id,
            oldest: now_ms.saturating_sub(retention.max_age_ms),
            newest: i64::MAX,
        }
    }

    /// Calls `f` with each visible row of `room` with an id in `[lo, hi]`,
    /// newest first if `desc`, until it returns `false`.
    fn scan(
        &self,
        room: RoomKey,
        visible: &Visible,
        (lo, hi): (i64, i64),
        desc: bool,
        mut f: impl FnMut(StoredMessage) -> bool,
    ) -> Result<(), HistoryError> {
        let lo = lo.max(visible.floor.saturating_add(1));
        let hi = hi.min(visible.last);
        if lo > hi {
            return Ok(());
        }
        let range = self.rows.range(keys::row_key(room, lo)..=keys::row_key(room, hi));
        let mut each = |guard: fjall::Guard| -> Result<bool, HistoryError> {
            let (key, value) = guard.into_inner()?;
            let Some((_, id)) = keys::parse_row_key(&key) else { return Ok(true) };
            let row = keys::decode_row(id, &value)?;
            if row.mtime < visible.oldest || row.mtime > visible.newest {
                return Ok(true);
            }
            Ok(f(row))
        };
        if desc {
            for guard in range.rev() {
                if !each(guard)? {
                    break;
                }
            }
        } else {
            for guard in range {
                if !each(guard)? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Up to `limit` of `room`'s stored rows with ids above `after`, oldest
    /// first, whatever the retention (recording reads every message once,
    /// before the sweep removes it).
    pub(crate) fn after(&self, room: RoomKey, after: i64, limit: usize) -> Result<Vec<StoredMessage>, HistoryError> {
        let last = self.cursor(room)?.last_id;
        let mut rows = Vec::new();
        if after >= last || limit == 0 {
            return Ok(rows);
        }
        for guard in self.rows.range(keys::row_key(room, after.saturating_add(1))..=keys::row_key(room, last)) {
            let (key, value) = guard.into_inner()?;
            let Some((_, id)) = keys::parse_row_key(&key) else { continue };
            rows.push(keys::decode_row(id, &value)?);
            if rows.len() >= limit {
                break;
            }
        }
        Ok(rows)
    }

    /// A page of `room`'s history: at most `query.num` rows (capped at the
    /// configured page), in the order asked.
    pub(crate) fn page(
        &self,
        room: RoomKey,
        query: &PageQuery,
        now_ms: i64,
    ) -> Result<Vec<StoredMessage>, HistoryError> {
        let mut visible = self.visible(room, self.cursor(room)?, now_ms);
        bound_times(&mut visible, query.begin, query.end);
        let (mut lo, mut hi) = (i64::MIN, i64::MAX);
        if query.lastid > 0 {
            if query.desc {
                hi = query.lastid - 1;
            } else {
                lo = query.lastid.saturating_add(1);
            }
        }
        let num = query.num.min(self.max_page());
        let mut rows = Vec::with_capacity(num);
        if num == 0 {
            return Ok(rows);
        }
        self.scan(room, &visible, (lo, hi), query.desc, |row| {
            if wanted(&query.mtypes, row.mtype) {
                rows.push(row);
            }
            rows.len() < num
        })?;
        Ok(rows)
    }

    /// How many of `room`'s messages lie in `[begin, end]` (0 = unbounded),
    /// and from how many distinct senders.
    pub(crate) fn count(
        &self,
        room: RoomKey,
        begin: i64,
        end: i64,
        mtypes: &[i64],
        now_ms: i64,
    ) -> Result<Counted, HistoryError> {
        let mut visible = self.visible(room, self.cursor(room)?, now_ms);
        bound_times(&mut visible, begin, end);
        let mut messages = 0;
        let mut senders = std::collections::HashSet::new();
        self.scan(room, &visible, (i64::MIN, i64::MAX), false, |row| {
            if wanted(mtypes, row.mtype) {
                messages += 1;
                senders.insert(row.from);
            }
            true
        })?;
        Ok(Counted { messages, senders: senders.len() as i64 })
    }

    /// The newest message of `room` (of `mtypes`, if any).
    pub(crate) fn newest(
        &self,
        room: RoomKey,
        mtypes: &[i64],
        now_ms: i64,
    ) -> Result<Option<StoredMessage>, HistoryError> {
        let query = PageQuery { desc: true, num: 1, mtypes: mtypes.to_vec(), ..PageQuery::default() };
        Ok(self.page(room, &query, now_ms)?.pop())
    }

    /// The message `from` sent in `room` as `mid`, if history still has it
    /// (the newest, should a sender have reused a mid). A scan of the
    /// room's retained rows, newest first.
    pub(crate) fn find(
        &self,
        room: RoomKey,
        from: i64,
        mid: i64,
        now_ms: i64,
    ) -> Result<Option<StoredMessage>, HistoryError> {
        let visible = self.visible(room, self.cursor(room)?, now_ms);
        let mut found = None;
        self.scan_raw(room, &visible, |id, row| {
            if keys::row_sender(row) != Some((from, mid)) {
                return Ok(true);
            }
            let message = keys::decode_row(id, row)?;
            if message.mtime >= visible.oldest {
                found = Some(message);
            }
            Ok(found.is_none())
        })?;
        Ok(found)
    }

    /// The messages of `room` sent at `since_ms` or later, newest first.
    pub(crate) fn recent(&self, room: RoomKey, since_ms: i64, now_ms: i64) -> Result<Vec<StoredMessage>, HistoryError> {
        let visible = self.visible(room, self.cursor(room)?, now_ms);
        let mut recent = Vec::new();
        self.scan_raw(room, &visible, |id, row| {
            let message = keys::decode_row(id, row)?;
            // Sends are in mtime order but for clock steps; a minute's slack.
            let go_on = message.mtime >= since_ms - 60_000;
            if message.mtime >= since_ms {
                recent.push(message);
            }
            Ok(go_on)
        })?;
        Ok(recent)
    }

    /// Calls `f` with the id and raw row of each retained row of `room`,
    /// newest first, until it returns `false`.
    fn scan_raw(
        &self,
        room: RoomKey,
        visible: &Visible,
        mut f: impl FnMut(i64, &[u8]) -> Result<bool, HistoryError>,
    ) -> Result<(), HistoryError> {
        let lo = visible.floor.saturating_add(1);
        if lo > visible.last {
            return Ok(());
        }
        for guard in self.rows.range(keys::row_key(room, lo)..=keys::row_key(room, visible.last)).rev() {
            let (key, row) = guard.into_inner()?;
            let Some((_, id)) = keys::parse_row_key(&key) else { continue };
            if !f(id, &row)? {
                break;
            }
        }
        Ok(())
    }
}

fn bound_times(visible: &mut Visible, begin: i64, end: i64) {
    if begin > 0 {
        visible.oldest = visible.oldest.max(begin);
    }
    if end > 0 {
        visible.newest = end;
    }
}

fn wanted(mtypes: &[i64], mtype: i64) -> bool {
    mtypes.is_empty() || mtypes.contains(&mtype)
}
