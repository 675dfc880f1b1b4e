//! Reading and deleting room message history, with its rules: a client
//! reads only rooms it is in (200040), even while muted (a mute stops
//! sending and live receiving, not reading), and deletes only its own
//! messages (200021). The server API is trusted with every room.
//!
//! The embedded engine reads its history store; the redis engine the
//! rooms' streams in Redis (`engine/redis_engine.rs`), under the same
//! retention rules.

use std::sync::Arc;

use rtm_protocol::ErrorCode;

use super::{Engine, Remote};
use crate::error::RtmError;
use crate::history::{Counted, History, HistoryError, PageQuery, StoredMessage};
use crate::model::{RoomKey, UserKey};

/// Who reads history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    /// A logged-in client: only rooms it is in.
    Client { uid: i64 },
    /// The server API.
    Backend,
}

impl From<HistoryError> for RtmError {
    fn from(e: HistoryError) -> Self {
        RtmError::new(ErrorCode::CoreUnknownError, e.to_string())
    }
}

/// Where history is.
enum Store<'a> {
    Local(&'a Arc<History>),
    Redis(&'a Remote),
}

/// Why the recording thread could not read history.
#[derive(Debug)]
pub(crate) enum AfterError {
    /// The local store failed: the recording fails.
    Store(HistoryError),
    /// Redis did not answer (a failover, an outage): the next pass retries.
    Unavailable(RtmError),
}

impl Engine {
    /// Whether room messages are kept as history (recording reads them).
    pub(crate) fn keeps_history(&self) -> bool {
        self.history_on().is_ok()
    }

    /// The id of `room`'s newest message in history (0: none); a recording
    /// started now records what comes after it.
    pub(crate) async fn history_last_id(&self, room: RoomKey) -> Result<i64, RtmError> {
        match self.history_on()? {
            Store::Local(history) => Ok(history.last_id(room)?),
            Store::Redis(remote) => {
                let query = PageQuery { desc: true, num: 1, ..PageQuery::default() };
                Ok(Box::pin(remote.history_page(room, &query)).await?.last().map_or(0, |row| row.id))
            }
        }
    }

    /// Up to `limit` of `room`'s messages after id `after`, oldest first.
    /// For the recording thread, outside the runtime: `runtime` runs the
    /// Redis read (the embedded store reads on the calling thread).
    pub(crate) fn history_after(
        &self,
        room: RoomKey,
        after: i64,
        limit: usize,
        runtime: Option<&tokio::runtime::Handle>,
    ) -> Result<Vec<StoredMessage>, AfterError> {
        let unavailable = |why: &'static str| AfterError::Unavailable(RtmError::new(ErrorCode::NoConfigInConsole, why));
        match self.history_on().map_err(AfterError::Unavailable)? {
            Store::Local(history) => history.after(room, after, limit).map_err(AfterError::Store),
            Store::Redis(remote) => {
                let runtime = runtime.ok_or_else(|| unavailable("no runtime to read redis from"))?;
                runtime.block_on(remote.history_after(room, after, limit)).map_err(AfterError::Unavailable)
            }
        }
    }

    fn history_on(&self) -> Result<Store<'_>, RtmError> {
        let store = match self.remote() {
            Some(remote) => remote.history.is_some().then_some(Store::Redis(remote)),
            None => self.history().map(Store::Local),
        };
        store.ok_or_else(|| {
            RtmError::new(ErrorCode::NoConfigInConsole, "message history is off on this server (history.enabled)")
        })
    }

    fn may_read(&self, room: RoomKey, reader: Reader) -> Result<(), RtmError> {
        match reader {
            Reader::Client { uid } if !self.is_member(room, uid) => {
                Err(RtmError::new(ErrorCode::NotInRoom, format!("you are not in room {}", room.rid)))
            }
            _ => Ok(()),
        }
    }

    /// A page of `room`'s history.
    pub(crate) async fn room_history(
        &self,
        room: RoomKey,
        reader: Reader,
        query: &PageQuery,
        now_ms: i64,
    ) -> Result<Vec<StoredMessage>, RtmError> {
        let store = self.history_on()?;
        self.may_read(room, reader)?;
        match store {
            Store::Local(history) => Ok(history.page(room, query, now_ms)?),
            Store::Redis(remote) => Box::pin(remote.history_page(room, query)).await,
        }
    }

    /// How many of `room`'s messages lie in `[begin, end]`.
    pub(crate) async fn room_history_count(
        &self,
        room: RoomKey,
        reader: Reader,
        (begin, end): (i64, i64),
        mtypes: &[i64],
        now_ms: i64,
    ) -> Result<Counted, RtmError> {
        let store = self.history_on()?;
        self.may_read(room, reader)?;
        match store {
            Store::Local(history) => Ok(history.count(room, begin, end, mtypes, now_ms)?),
            Store::Redis(remote) => Box::pin(remote.history_count(room, (begin, end), mtypes)).await,
        }
    }

    /// Each of the user's rooms with its newest message (of `mtypes`);
    /// rooms without one are left out.
    pub(crate) async fn rooms_newest_message(
        &self,
        user: UserKey,
        mtypes: &[i64],
        now_ms: i64,
    ) -> Result<Vec<(i64, StoredMessage)>, RtmError> {
        let store = self.history_on()?;
        let mut newest = Vec::new();
        for rid in self.user_rooms(user) {
            let room = RoomKey { pid: user.pid, rid };
            let message = match &store {
                Store::Local(history) => history.newest(room, mtypes, now_ms)?,
                Store::Redis(remote) => {
                    let query = PageQuery { desc: true, num: 1, mtypes: mtypes.to_vec(), ..PageQuery::default() };
                    Box::pin(remote.history_page(room, &query)).await?.pop()
                }
            };
            if let Some(message) = message {
                newest.push((rid, message));
            }
        }
        Ok(newest)
    }

    /// The message `from` sent in `room` as `mid` (200070 if history does
    /// not have it).
    pub(crate) async fn room_message(
        &self,
        room: RoomKey,
        reader: Reader,
        (from, mid): (i64, i64),
        now_ms: i64,
    ) -> Result<StoredMessage, RtmError> {
        let store = self.history_on()?;
        self.may_read(room, reader)?;
        let found = match store {
            Store::Local(history) => history.find(room, from, mid, now_ms)?,
            Store::Redis(remote) => Box::pin(remote.history_find(room, (from, mid))).await?,
        };
        found.ok_or_else(|| {
            RtmError::new(
                ErrorCode::MessageNotFound,
                format!("no message {mid} from user {from} in room {}'s history", room.rid),
            )
        })
    }

    /// Deletes the message `from` sent in `room` as `mid` from history; a
    /// message not there is not an error (a retry is safe).
    pub(crate) async fn delete_room_message(
        &self,
        room: RoomKey,
        reader: Reader,
        (from, mid): (i64, i64),
    ) -> Result<(), RtmError> {
        let store = self.history_on()?;
        if let Reader::Client { uid } = reader {
            if uid != from {
                return Err(RtmError::new(
                    ErrorCode::PermissionDenied,
                    format!("user {uid} may delete only its own messages, not user {from}'s"),
                ));
            }
        }
        match store {
            // Queued behind every send made before it, so it finds them.
            Store::Local(history) => history.delete(room, from, mid),
            Store::Redis(remote) => return Box::pin(remote.history_delete(room, (from, mid))).await,
        }
        Ok(())
    }
}
