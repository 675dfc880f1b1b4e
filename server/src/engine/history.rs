//! Reading and deleting room message history, with its rules: a client
//! reads only rooms it is in (200040), even while muted (a mute stops
//! sending and live receiving, not reading), and deletes only its own
//! messages (200021). The server API is trusted with every room.

use std::sync::Arc;

use rtm_protocol::ErrorCode;

use super::Engine;
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

impl Engine {
    fn history_on(&self) -> Result<&Arc<History>, RtmError> {
        self.embedded_only("message history")?;
        self.history().ok_or_else(|| {
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
    pub(crate) fn room_history(
        &self,
        room: RoomKey,
        reader: Reader,
        query: &PageQuery,
        now_ms: i64,
    ) -> Result<Vec<StoredMessage>, RtmError> {
        let history = self.history_on()?;
        self.may_read(room, reader)?;
        Ok(history.page(room, query, now_ms)?)
    }

    /// How many of `room`'s messages lie in `[begin, end]`.
    pub(crate) fn room_history_count(
        &self,
        room: RoomKey,
        reader: Reader,
        (begin, end): (i64, i64),
        mtypes: &[i64],
        now_ms: i64,
    ) -> Result<Counted, RtmError> {
        let history = self.history_on()?;
        self.may_read(room, reader)?;
        Ok(history.count(room, begin, end, mtypes, now_ms)?)
    }

    /// Each of the user's rooms with its newest message (of `mtypes`);
    /// rooms without one are left out.
    pub(crate) fn rooms_newest_message(
        &self,
        user: UserKey,
        mtypes: &[i64],
        now_ms: i64,
    ) -> Result<Vec<(i64, StoredMessage)>, RtmError> {
        let history = self.history_on()?;
        let mut newest = Vec::new();
        for rid in self.user_rooms(user) {
            if let Some(message) = history.newest(RoomKey { pid: user.pid, rid }, mtypes, now_ms)? {
                newest.push((rid, message));
            }
        }
        Ok(newest)
    }

    /// The message `from` sent in `room` as `mid` (200070 if history does
    /// not have it).
    pub(crate) fn room_message(
        &self,
        room: RoomKey,
        reader: Reader,
        (from, mid): (i64, i64),
        now_ms: i64,
    ) -> Result<StoredMessage, RtmError> {
        let history = self.history_on()?;
        self.may_read(room, reader)?;
        history.find(room, from, mid, now_ms)?.ok_or_else(|| {
            RtmError::new(
                ErrorCode::MessageNotFound,
                format!("no message {mid} from user {from} in room {}'s history", room.rid),
            )
        })
    }

    /// Deletes the message `from` sent in `room` as `mid` from history; a
    /// message not there is not an error (a retry is safe).
    pub(crate) fn delete_room_message(
        &self,
        room: RoomKey,
        reader: Reader,
        (from, mid): (i64, i64),
    ) -> Result<(), RtmError> {
        let history = self.history_on()?;
        if let Reader::Client { uid } = reader {
            if uid != from {
                return Err(RtmError::new(
                    ErrorCode::PermissionDenied,
                    format!("user {uid} may delete only its own messages, not user {from}'s"),
                ));
            }
        }
        // Queued behind every send made before it, so it finds them.
        history.delete(room, from, mid);
        Ok(())
    }
}
