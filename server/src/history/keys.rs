//! How history lies in the store: keys that sort by room and then by id,
//! and a compact row format.
//!
//! - `rows`: `pid ‖ rid ‖ id` → row. One room's rows are one contiguous
//!   range, oldest first, so a page is one range scan and expiry deletes
//!   from the range's head.
//!
//! There is no index by `(from, mid)`: keeping one doubled the cost of a
//! send, while `getmsg` and `delmsg` (rare) scan the room's retained rows,
//! newest first, reading only two fixed fields of each.
//! - `meta`: `pid ‖ rid ‖ tag` → `i64`: a room's highest id once its rows
//!   are gone (so ids never repeat) and released rooms whose rows are being
//!   dropped.
//!
//! Integers are big-endian with the sign bit flipped, so byte order is
//! numeric order for negative ids too.

use crate::model::{Body, RoomKey};

pub(super) const ROOM_PREFIX_LEN: usize = 16;

/// The format of a row value; a row in another format is refused, never
/// misread.
const ROW_FORMAT: u8 = 1;
const FLAG_BINARY: u8 = 1;

/// `meta` tags.
pub(super) const META_LAST_ID: u8 = 1;
pub(super) const META_DROPPED_THROUGH: u8 = 2;

fn ordered(n: i64) -> [u8; 8] {
    ((n as u64) ^ (1 << 63)).to_be_bytes()
}

fn unordered(bytes: &[u8]) -> Option<i64> {
    let array: [u8; 8] = bytes.try_into().ok()?;
    Some((u64::from_be_bytes(array) ^ (1 << 63)) as i64)
}

pub(super) fn room_prefix(room: RoomKey) -> [u8; ROOM_PREFIX_LEN] {
    let mut key = [0; ROOM_PREFIX_LEN];
    key[..8].copy_from_slice(&ordered(room.pid));
    key[8..].copy_from_slice(&ordered(room.rid));
    key
}

pub(super) fn row_key(room: RoomKey, id: i64) -> [u8; 24] {
    let mut key = [0; 24];
    key[..16].copy_from_slice(&room_prefix(room));
    key[16..].copy_from_slice(&ordered(id));
    key
}

/// The room and id of a `rows` key.
pub(super) fn parse_row_key(key: &[u8]) -> Option<(RoomKey, i64)> {
    if key.len() != 24 {
        return None;
    }
    let room = RoomKey { pid: unordered(&key[..8])?, rid: unordered(&key[8..16])? };
    Some((room, unordered(&key[16..])?))
}

/// The first key past every key of `room` (for skipping to the next room).
pub(super) fn next_room_prefix(room: RoomKey) -> Option<[u8; ROOM_PREFIX_LEN]> {
    match room.rid.checked_add(1) {
        Some(rid) => Some(room_prefix(RoomKey { pid: room.pid, rid })),
        None => room.pid.checked_add(1).map(|pid| room_prefix(RoomKey { pid, rid: i64::MIN })),
    }
}

/// The sender and mid of a row, without decoding the rest.
pub(super) fn row_sender(row: &[u8]) -> Option<(i64, i64)> {
    if row.first() != Some(&ROW_FORMAT) || row.len() < 19 {
        return None;
    }
    Some((decode_i64(&row[3..11])?, decode_i64(&row[11..19])?))
}

pub(super) fn meta_key(room: RoomKey, tag: u8) -> [u8; 17] {
    let mut key = [0; 17];
    key[..16].copy_from_slice(&room_prefix(room));
    key[16] = tag;
    key
}

pub(super) fn encode_i64(n: i64) -> [u8; 8] {
    n.to_be_bytes()
}

pub(super) fn decode_i64(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.try_into().ok()?))
}

/// A message as history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredMessage {
    /// The row's cursor within its room.
    pub(crate) id: i64,
    pub(crate) from: i64,
    pub(crate) mtype: i64,
    pub(crate) mid: i64,
    pub(crate) body: Body,
    pub(crate) attrs: String,
    pub(crate) mtime: i64,
}

/// `format, flags, mtype, from, mid, mtime, body length (u32), body, attrs`.
pub(super) fn encode_row(from: i64, mtype: i64, mid: i64, mtime: i64, body: &Body, attrs: &str) -> Vec<u8> {
    let (flags, body) = match body {
        Body::Text(text) => (0, text.as_bytes()),
        Body::Binary(bytes) => (FLAG_BINARY, bytes.as_slice()),
    };
    let mut row = Vec::with_capacity(35 + body.len() + attrs.len());
    row.push(ROW_FORMAT);
    row.push(flags);
    // mtype is 1 to 127 (checked before a send is accepted).
    row.push(mtype as u8);
    row.extend_from_slice(&from.to_be_bytes());
    row.extend_from_slice(&mid.to_be_bytes());
    row.extend_from_slice(&mtime.to_be_bytes());
    row.extend_from_slice(&(body.len() as u32).to_be_bytes());
    row.extend_from_slice(body);
    row.extend_from_slice(attrs.as_bytes());
    row
}

/// Why a stored row could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RowError {
    #[error("history row in format {0}; this server reads format {ROW_FORMAT}")]
    Format(u8),
    #[error("history row is damaged")]
    Damaged,
}

pub(super) fn decode_row(id: i64, row: &[u8]) -> Result<StoredMessage, RowError> {
    const HEAD: usize = 3 + 8 * 3 + 4;
    let format = *row.first().ok_or(RowError::Damaged)?;
    if format != ROW_FORMAT {
        return Err(RowError::Format(format));
    }
    if row.len() < HEAD {
        return Err(RowError::Damaged);
    }
    let int = |at: usize| decode_i64(&row[at..at + 8]).ok_or(RowError::Damaged);
    let body_len = u32::from_be_bytes(row[27..31].try_into().map_err(|_| RowError::Damaged)?) as usize;
    let rest = &row[HEAD..];
    if rest.len() < body_len {
        return Err(RowError::Damaged);
    }
    let (body, attrs) = rest.split_at(body_len);
    let body = match row[1] & FLAG_BINARY {
        0 => Body::Text(String::from_utf8(body.to_vec()).map_err(|_| RowError::Damaged)?),
        _ => Body::Binary(body.to_vec()),
    };
    Ok(StoredMessage {
        id,
        mtype: i64::from(row[2]),
        from: int(3)?,
        mid: int(11)?,
        mtime: int(19)?,
        body,
        attrs: String::from_utf8(attrs.to_vec()).map_err(|_| RowError::Damaged)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_room_then_id_with_negative_numbers_in_order() {
        let room = |pid, rid| RoomKey { pid, rid };
        let keys =
            [row_key(room(-1, 5), 9), row_key(room(1, -5), 2), row_key(room(1, -5), 10), row_key(room(1, 7), -3)];
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(parse_row_key(&keys[2]), Some((room(1, -5), 10)));
        assert!(next_room_prefix(room(1, -5)).unwrap().as_slice() > &keys[2][..16]);
        assert!(next_room_prefix(room(1, -5)).unwrap().as_slice() <= &keys[3][..16]);
        assert_eq!(next_room_prefix(room(1, i64::MAX)).unwrap(), room_prefix(room(2, i64::MIN)));
    }

    #[test]
    fn rows_keep_text_and_binary_bodies() {
        for body in [Body::Text("héllo".into()), Body::Binary(vec![0, 0xff, 1]), Body::Text(String::new())] {
            let row = encode_row(-7, 51, i64::MAX, 1_700_000_000_123, &body, "{\"k\":1}");
            let stored = decode_row(3, &row).unwrap();
            assert_eq!(row_sender(&row), Some((-7, i64::MAX)));
            assert_eq!(
                stored,
                StoredMessage {
                    id: 3,
                    from: -7,
                    mtype: 51,
                    mid: i64::MAX,
                    body,
                    attrs: "{\"k\":1}".into(),
                    mtime: 1_700_000_000_123
                }
            );
        }
    }

    #[test]
    fn foreign_or_cut_rows_are_refused() {
        let mut row = encode_row(1, 30, 2, 3, &Body::Text("hi".into()), "");
        assert_eq!(decode_row(1, &row[..20]), Err(RowError::Damaged));
        row[0] = 9;
        assert_eq!(decode_row(1, &row), Err(RowError::Format(9)));
        assert_eq!(decode_row(1, &[]), Err(RowError::Damaged));
    }
}
