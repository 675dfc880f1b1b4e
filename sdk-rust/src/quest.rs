//! Quests on the wire, with no I/O: encoding (unsigned, or signed for the
//! server API), stamping the sequence number, and reading answers.
//!
//! Quests are encoded on the caller's thread as twoway frames with seq 0;
//! the connection task [`stamp`]s the real seq into the frame as it writes
//! it. This module depends on nothing else in the crate but the error type,
//! so every layer above can use it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use rtm_protocol::methods::{ServerAuth, Signed};
use rtm_protocol::{payload, write_quest, Answer, Encoding, ErrorAnswer};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, ErrorKind};

/// Offset of the sequence number in a twoway quest frame.
const SEQ_OFFSET: usize = rtm_protocol::HEADER_LEN;

/// Encodes a twoway quest with seq 0, unsigned (FPNN built-ins such as
/// `*ping`, or quests on a connection that authenticated once).
pub(crate) fn encode(method: &str, params: &(impl Serialize + ?Sized)) -> Result<Bytes, Error> {
    let mut out = BytesMut::with_capacity(128);
    write_quest(&mut out, Encoding::MsgPack, Some(0), method, params)
        .map_err(|e| Error::invalid(format!("cannot encode '{method}': {e}")))?;
    Ok(out.freeze())
}

/// Writes `seq` into `frame`, a twoway quest encoded by this module.
pub(crate) fn stamp(frame: &mut [u8], seq: u32) {
    frame[SEQ_OFFSET..SEQ_OFFSET + 4].copy_from_slice(&seq.to_le_bytes());
}

/// Signs server-API quests for a project.
#[derive(Clone)]
pub(crate) struct Signer {
    pid: i64,
    secret: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("pid", &self.pid).finish_non_exhaustive()
    }
}

impl Signer {
    pub(crate) fn new(pid: i64, secret: impl Into<String>) -> Self {
        Self { pid, secret: secret.into() }
    }

    /// The project it signs for.
    pub(crate) fn pid(&self) -> i64 {
        self.pid
    }

    /// Encodes a twoway quest with seq 0, signed unless the method is an
    /// FPNN built-in (`*ping`).
    pub(crate) fn encode(&self, method: &str, params: &(impl Serialize + ?Sized)) -> Result<Bytes, Error> {
        if method.starts_with('*') {
            return encode(method, params);
        }
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let auth = ServerAuth::new(self.pid, &self.secret, next_salt(), method, ts);
        encode(method, &Signed { auth: &auth, params })
    }
}

/// Turns an answer into `T`, or into the server's error.
pub(crate) fn decode_answer<T: DeserializeOwned>(answer: &Answer) -> Result<T, Error> {
    if answer.status != 0 {
        return match payload::decode::<ErrorAnswer>(answer.encoding, &answer.payload) {
            Ok(err) => Err(Error::server(err.code, err.ex)),
            Err(e) => Err(Error::new(ErrorKind::Protocol, format!("unreadable error answer: {e}"))),
        };
    }
    payload::decode(answer.encoding, &answer.payload)
        .map_err(|e| Error::new(ErrorKind::Protocol, format!("unexpected answer: {e}")))
}

/// The last salt handed out.
///
/// The Python SDK derives the salt from the current millisecond only, so
/// calls in the same millisecond share a salt. Here a salt is the current
/// time in microseconds, bumped past the last one handed out: unique for
/// every call in the process, even thousands per millisecond, and still
/// increasing with time across restarts.
static LAST_SALT: AtomicI64 = AtomicI64::new(0);

/// A salt no other call in this process has used.
fn next_salt() -> i64 {
    unique_id()
}

/// An id no other call in this process has had, increasing with time
/// (microseconds): salts, and message ids a backend sends with.
pub(crate) fn unique_id() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    let mut last = LAST_SALT.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST_SALT.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtm_protocol::methods::{Ping, RoomMembers};
    use rtm_protocol::{write_answer, ErrorCode, Frame};
    use std::collections::HashSet;

    fn decode_quest(frame: &[u8]) -> rtm_protocol::Quest {
        match Frame::decode(&mut BytesMut::from(frame), 1 << 20) {
            Ok(Some(Frame::Quest(quest))) => quest,
            other => panic!("expected a quest, got {other:?}"),
        }
    }

    #[test]
    fn salts_are_unique_across_threads() {
        let threads: Vec<_> =
            (0..4).map(|_| std::thread::spawn(|| (0..10_000).map(|_| next_salt()).collect::<Vec<_>>())).collect();
        let mut all = HashSet::new();
        for t in threads {
            for salt in t.join().unwrap() {
                assert!(all.insert(salt), "salt {salt} repeated");
            }
        }
        assert_eq!(all.len(), 40_000);
    }

    #[test]
    fn signed_quests_carry_the_auth_keys_and_builtins_do_not() {
        #[derive(serde::Deserialize)]
        struct Keys {
            pid: Option<i64>,
            sign: Option<String>,
            rid: Option<i64>,
        }
        let signer = Signer::new(7, "secret");
        let frame = signer.encode("getroommembers", &rtm_protocol::methods::GetRoomMembers { rid: 5 }).unwrap();
        let quest = decode_quest(&frame);
        let keys: Keys = payload::decode(quest.encoding, &quest.payload).unwrap();
        assert_eq!((keys.pid, keys.rid, keys.sign.map(|s| s.len())), (Some(7), Some(5), Some(32)));
        assert_eq!(quest.seq, Some(0));

        let mut stamped = BytesMut::from(&frame[..]);
        stamp(&mut stamped, 0x0102_0304);
        assert_eq!(decode_quest(&stamped).seq, Some(0x0102_0304));

        for frame in [signer.encode("*ping", &Ping {}).unwrap(), encode("auth", &Ping {}).unwrap()] {
            let quest = decode_quest(&frame);
            let keys: Keys = payload::decode(quest.encoding, &quest.payload).unwrap();
            assert_eq!((keys.pid, keys.sign), (None, None));
        }
    }

    fn answer<T: Serialize>(status: u8, payload: &T) -> Answer {
        let mut out = BytesMut::new();
        write_answer(&mut out, 1, Encoding::MsgPack, 9, status, payload).unwrap();
        match Frame::decode(&mut out, 1 << 20) {
            Ok(Some(Frame::Answer(answer))) => answer,
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    #[test]
    fn answers_decode_to_the_type_or_the_server_error() {
        let ok = answer(0, &RoomMembers { uids: vec![3] });
        assert_eq!(decode_answer::<RoomMembers>(&ok).unwrap().uids, vec![3]);
        let refused = answer(1, &ErrorAnswer::new(ErrorCode::InvalidParameter, "no"));
        let err = decode_answer::<RoomMembers>(&refused).unwrap_err();
        assert_eq!((err.kind(), err.message()), (ErrorKind::Server, "no"));
        assert_eq!(decode_answer::<ErrorAnswer>(&ok).unwrap_err().kind(), ErrorKind::Protocol);
    }
}
