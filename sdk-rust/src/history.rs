//! Room message history: what to ask for, and the rows that come back.
//! The pager that walks a room's history is in `history_pager.rs`.

pub use rtm_protocol::methods::{HistoryPage, HistoryRow, MessageInfo};

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

impl HistoryQuery {
    /// The server API's `getroommsg` for room `rid` as user `uid` sees it.
    pub(crate) fn server_request(&self, uid: i64, rid: i64) -> rtm_protocol::methods::GetRoomMsg {
        let client = self.client_request(rid);
        rtm_protocol::methods::GetRoomMsg {
            uid,
            rid,
            desc: client.desc,
            num: client.num,
            begin: client.begin,
            end: client.end,
            lastid: client.lastid,
            mtypes: client.mtypes,
        }
    }

    /// The client gate's `getroommsg` for room `rid`.
    pub(crate) fn client_request(&self, rid: i64) -> rtm_protocol::client::GetRoomMsg {
        rtm_protocol::client::GetRoomMsg {
            rid,
            desc: self.desc,
            num: self.num,
            begin: self.begin,
            end: self.end,
            lastid: self.lastid,
            mtypes: self.mtypes.clone(),
        }
    }
}
