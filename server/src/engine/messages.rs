//! Room messages: the checks of a send and its delivery, as one step under
//! the room's lock, so every receiver sees one room's messages in one order.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rtm_protocol::ErrorCode;

use super::Engine;
use crate::config::Limits;
use crate::error::RtmError;
use crate::model::{Body, Mode, RoomKey, RoomMessage, CHAT_MTYPE};

/// How long a `(from, rid, mid)` is remembered to answer retries. SDKs
/// retry within their quest timeout (5–30 s); the memory it costs is the
/// send rate times this window times one map entry: 48 bytes of key and
/// value plus the hash table's slack, 50–100 bytes by the types' sizes.
pub(crate) const DEDUP_WINDOW_MS: i64 = 2 * 60 * 1000;

/// Who sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sender {
    /// A logged-in client: membership, mute and mode are checked, and its
    /// own session does not receive the message.
    Client { session: u64 },
    /// The server API: trusted; it may speak as any uid.
    Backend,
}

/// The mtypes a client may send: chat (30), cmd (32) and the application's
/// own (51 to 127). 1 to 29 and 33 to 50 are the system's and files'.
fn client_may_send(mtype: i64) -> bool {
    mtype == CHAT_MTYPE || mtype == 32 || (51..=127).contains(&mtype)
}

/// A retry's key, and a fingerprint of the content it must repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SentKey {
    pid: i64,
    rid: i64,
    from: i64,
    mid: i64,
}

/// What was sent under a key: the content's fingerprint, and when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    fingerprint: u64,
    mtime: i64,
}

fn fingerprint(message: &RoomMessage) -> u64 {
    content_fingerprint(message.mtype, &message.body, &message.attrs)
}

fn content_fingerprint(mtype: i64, body: &Body, attrs: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    (mtype, body, attrs).hash(&mut hasher);
    hasher.finish()
}

impl Engine {
    /// Sends `message` (its `mtime` is set here) to room `rid`; returns the
    /// `mtime`. A retry with the same `(from, rid, mid)` and content answers
    /// the first `mtime` and is not delivered again; other content under the
    /// same key is refused (200053).
    pub(crate) async fn send_room_message(
        &self,
        mut message: RoomMessage,
        sender: Sender,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<i64, RtmError> {
        let refuse = |code, ex: String| Err(RtmError::new(code, ex));
        if message.body.len() > limits.max_message_bytes {
            let ex = format!("'msg' is {} bytes; at most {} are allowed", message.body.len(), limits.max_message_bytes);
            return refuse(ErrorCode::LargeMessageOrAttrs, ex);
        }
        if message.attrs.len() > limits.max_attrs_bytes {
            let ex =
                format!("'attrs' is {} bytes; at most {} are allowed", message.attrs.len(), limits.max_attrs_bytes);
            return refuse(ErrorCode::LargeMessageOrAttrs, ex);
        }
        let mtype_ok = match sender {
            Sender::Client { .. } => client_may_send(message.mtype),
            Sender::Backend => (1..=127).contains(&message.mtype),
        };
        if !mtype_ok {
            let allowed = match sender {
                Sender::Client { .. } => "30 (chat), 32 (cmd) or 51 to 127",
                Sender::Backend => "1 to 127",
            };
            return refuse(
                ErrorCode::InvalidMtype,
                format!("mtype {} may not be sent here; use {allowed}", message.mtype),
            );
        }
        let key = RoomKey { pid: message.pid, rid: message.rid };
        if let Some(remote) = self.remote() {
            // Project-wide mutes live in another slot: checked here, from the cache.
            let muted = self.state().is_banned_in_room(key.pid, key.rid, message.from, now_ms);
            return Box::pin(remote.send(&message, sender, muted, DEDUP_WINDOW_MS)).await;
        }
        let _room = self.lock(key);
        if let Sender::Client { .. } = sender {
            let Some(member) = self.state().participant(key, message.from) else {
                return refuse(ErrorCode::NotInRoom, format!("you are not in room {}", message.rid));
            };
            if self.state().is_banned_in_room(key.pid, key.rid, message.from, now_ms) {
                return refuse(ErrorCode::BannedInRoom, format!("you are muted in room {}", message.rid));
            }
            if !matches!(member.mode, Mode::SendReceive | Mode::SendOnly) {
                let ex = format!("your mode in room {} does not send (mode {})", message.rid, member.mode.code());
                return refuse(ErrorCode::PermissionDenied, ex);
            }
        }
        self.recall_recent_sends(key, now_ms)?;
        let sent_key = SentKey { pid: key.pid, rid: key.rid, from: message.from, mid: message.mid };
        let print = fingerprint(&message);
        let within_window = |sent: &Sent| now_ms - sent.mtime < DEDUP_WINDOW_MS;
        if let Some(earlier) = self.inner.sent.get(&sent_key).map(|s| *s).filter(within_window) {
            if earlier.fingerprint == print {
                return Ok(earlier.mtime);
            }
            let ex = format!(
                "mid {} was already used by user {} in room {} for another message",
                message.mid, message.from, message.rid
            );
            return refuse(ErrorCode::DuplicatedMid, ex);
        }
        message.mtime = now_ms;
        if let Some(history) = self.history() {
            // Queued for history before anyone receives it; answered once stored.
            history.append(&message)?;
        }
        self.inner.sent.insert(sent_key, Sent { fingerprint: print, mtime: now_ms });
        self.state().touch(key, now_ms);
        let except = match sender {
            Sender::Client { session } => Some(session),
            Sender::Backend => None,
        };
        self.commit().deliver_room_message(Arc::new(crate::outbox::Delivery::new(message)), except);
        Ok(now_ms)
    }

    /// Right after a start, the retry window reaches back before it: the
    /// first send to a room then has the room's sends of that window read
    /// back from history, so a retry of a send whose answer a crash lost is
    /// still recognized. Called under the room's lock.
    fn recall_recent_sends(&self, key: RoomKey, now_ms: i64) -> Result<(), RtmError> {
        let started = self.inner.started_ms;
        let Some(history) = self.history() else { return Ok(()) };
        if now_ms - started >= DEDUP_WINDOW_MS || !self.inner.recalled.insert(key) {
            return Ok(());
        }
        for stored in history.recent(key, started - DEDUP_WINDOW_MS, now_ms)? {
            let sent_key = SentKey { pid: key.pid, rid: key.rid, from: stored.from, mid: stored.mid };
            let sent = Sent {
                fingerprint: content_fingerprint(stored.mtype, &stored.body, &stored.attrs),
                mtime: stored.mtime,
            };
            // Newest first: keep the newest of a reused mid.
            self.inner.sent.entry(sent_key).or_insert(sent);
        }
        Ok(())
    }

    /// Forgets sends older than the retry window.
    pub(crate) fn forget_old_sends(&self, now_ms: i64) {
        self.inner.sent.retain(|_, sent| now_ms - sent.mtime < DEDUP_WINDOW_MS);
        if now_ms - self.inner.started_ms >= DEDUP_WINDOW_MS {
            self.inner.recalled.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `DEDUP_WINDOW_MS`'s memory figure (and docs/api.md's) rests on this.
    #[test]
    fn a_remembered_send_is_48_bytes_of_key_and_value() {
        assert_eq!(size_of::<SentKey>() + size_of::<Sent>(), 48);
    }
}
