//! A pager that walks a room's history page by page, for the server client
//! and the end-user client.

use std::collections::VecDeque;

use crate::client::RtmServerClient;
use crate::end_user::RtmClient;
use crate::error::Error;
use crate::history::{HistoryQuery, HistoryRow};

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
