//! Room message history: what to ask for, and a pager that walks a room's
//! history page by page, for the server client and the end-user client.

pub use rtm_protocol::methods::{HistoryPage, HistoryRow, MessageInfo};

use std::collections::VecDeque;

use crate::client::RtmServerClient;
use crate::end_user::RtmClient;
use crate::error::Error;

/// Which part of a room's history to read, and how many rows per page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Newest first (`true`) or oldest first.
    pub desc: bool,
    /// Rows per page, 1 to 20.
    pub num: i64,
    /// Oldest `mtime` wanted (Unix ms, inclusive; 0 = unbounded).
    pub begin: i64,
    /// Newest `mtime` wanted (Unix ms, inclusive; 0 = now).
    pub end: i64,
    /// Start after this row id (0 = from the start); the pager sets it.
    pub lastid: i64,
    /// Only these mtypes (`None` = all).
    pub mtypes: Option<Vec<i64>>,
}

impl HistoryQuery {
    /// The newest messages first, `num` per page.
    pub fn newest_first(num: i64) -> Self {
        Self { desc: true, num, begin: 0, end: 0, lastid: 0, mtypes: None }
    }

    /// The oldest messages first, `num` per page.
    pub fn oldest_first(num: i64) -> Self {
        Self { desc: false, ..Self::newest_first(num) }
    }

    /// Only messages of these types.
    pub fn mtypes(mut self, mtypes: &[i64]) -> Self {
        self.mtypes = Some(mtypes.to_vec());
        self
    }

    /// Only messages sent between `begin` and `end` (Unix ms, inclusive;
    /// 0 = unbounded).
    pub fn between(mut self, begin: i64, end: i64) -> Self {
        self.begin = begin;
        self.end = end;
        self
    }
}

/// Who reads: a backend as some user, or a logged-in end user.
#[derive(Clone)]
enum Reader {
    Server { client: RtmServerClient, uid: i64 },
    Client(RtmClient),
}

/// Walks a room's history page by page: [`next`](Self::next) gives one row
/// at a time and asks the server for the next page when the last one runs
/// out. Rows sent while paging backward never show up; paging forward, they
/// do, at the end. No row is skipped or repeated.
pub struct RoomHistory {
    reader: Reader,
    rid: i64,
    query: HistoryQuery,
    rows: VecDeque<HistoryRow>,
    done: bool,
}

impl RoomHistory {
    fn new(reader: Reader, rid: i64, query: HistoryQuery) -> Self {
        Self { reader, rid, query, rows: VecDeque::new(), done: false }
    }

    /// The next row, `Ok(None)` once the history is exhausted.
    pub async fn next(&mut self) -> Result<Option<HistoryRow>, Error> {
        if self.rows.is_empty() && !self.done {
            let page = self.next_page().await?;
            self.rows.extend(page);
        }
        Ok(self.rows.pop_front())
    }

    /// The next page of rows; empty once the history is exhausted.
    pub async fn next_page(&mut self) -> Result<Vec<HistoryRow>, Error> {
        if self.done {
            return Ok(Vec::new());
        }
        let page = match &self.reader {
            Reader::Server { client, uid } => client.get_room_messages(*uid, self.rid, &self.query).await?,
            Reader::Client(client) => client.get_room_messages(self.rid, &self.query).await?,
        };
        // A short page is the last one.
        self.done = page.num < self.query.num.min(rtm_protocol::methods::MAX_HISTORY_PAGE) || page.msgs.is_empty();
        self.query.lastid = page.lastid;
        self.query.begin = page.begin;
        self.query.end = page.end;
        Ok(page.msgs)
    }

    /// Every remaining row.
    pub async fn collect(mut self) -> Result<Vec<HistoryRow>, Error> {
        let mut rows = Vec::new();
        while let Some(row) = self.next().await? {
            rows.push(row);
        }
        Ok(rows)
    }
}

impl RtmServerClient {
    /// Room `rid`'s history as user `uid` sees it, page by page (see
    /// [`get_room_messages`](Self::get_room_messages) for one page).
    pub fn room_history(&self, uid: i64, rid: i64, query: HistoryQuery) -> RoomHistory {
        RoomHistory::new(Reader::Server { client: self.clone(), uid }, rid, query)
    }
}

impl RtmClient {
    /// Room `rid`'s history, page by page (the user must be in the room).
    pub fn room_history(&self, rid: i64, query: HistoryQuery) -> RoomHistory {
        RoomHistory::new(Reader::Client(self.clone()), rid, query)
    }
}
