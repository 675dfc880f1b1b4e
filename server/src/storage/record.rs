//! CRC-framed records, the unit of both the log and snapshots.
//!
//! ```text
//! +-----------+-----------+---------+----------------------------+
//! | len u32LE | crc u32LE | version | mutation (msgpack)         |
//! +-----------+-----------+---------+----------------------------+
//!                          \________ len bytes, crc32 over them _/
//! ```
//!
//! A record is applied whole or not at all: a torn or corrupt one fails
//! its checksum.

use crate::model::Mutation;

/// Format version of the record body. Release 0.1.0 wrote 1, and this
/// build still does: the persisted types in `model` keep its encoding.
/// A build that changes the encoding raises it and keeps reading the old.
pub(crate) const VERSION: u8 = 1;
/// Length and CRC.
pub(crate) const HEADER: usize = 8;
/// No mutation is anywhere near this big; a larger length is corruption.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Appends one record holding `mutation` to `out`.
pub(crate) fn encode(mutation: &Mutation, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(VERSION);
    // Mutations are plain data: serialising them into a Vec cannot fail.
    rmp_serde::encode::write(out, mutation).expect("mutations serialise");
    let body = &out[start + HEADER..];
    let len = body.len() as u32;
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// What was found at an offset.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// A valid record and the offset just past it.
    Record(Mutation, usize),
    /// The input ends here, cleanly.
    End,
    /// The record at this offset is cut short by the end of the input.
    Truncated,
    /// The record at this offset is damaged.
    Corrupt(String),
    /// An intact record in a format newer than this build reads.
    NewerVersion(u8),
}

/// Reads the record at `at`.
pub(crate) fn read(bytes: &[u8], at: usize) -> Read {
    let rest = &bytes[at..];
    if rest.is_empty() {
        return Read::End;
    }
    if rest.len() < HEADER {
        return Read::Truncated;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len == 0 || len > MAX_BODY {
        return Read::Corrupt(format!("impossible record length {len}"));
    }
    let Some(body) = rest.get(HEADER..HEADER + len) else {
        return Read::Truncated;
    };
    if crc32fast::hash(body) != crc {
        return Read::Corrupt("checksum mismatch".into());
    }
    if body[0] > VERSION {
        return Read::NewerVersion(body[0]);
    }
    if body[0] != VERSION {
        return Read::Corrupt(format!("unknown record version {}", body[0]));
    }
    match rmp_serde::from_slice::<Mutation>(&body[1..]) {
        Ok(m) => Read::Record(m, at + HEADER + len),
        Err(e) => Read::Corrupt(format!("undecodable record: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BanScope;

    fn sample() -> Vec<Mutation> {
        vec![
            Mutation::AddMembers { pid: 1, rid: 2, uids: vec![3, 4], at_ms: 0 },
            Mutation::SetRoomInfo { pid: 1, rid: 2, oinfo: Some("o".into()), pinfo: None },
            Mutation::AddBan { pid: 1, scope: BanScope::AllRooms, uid: 5, expires_at_ms: Some(99) },
        ]
    }

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        for m in sample() {
            encode(&m, &mut out);
        }
        let mut at = 0;
        let mut back = Vec::new();
        while let Read::Record(m, next) = read(&out, at) {
            back.push(m);
            at = next;
        }
        assert_eq!(read(&out, at), Read::End);
        assert_eq!(back, sample());
    }

    #[test]
    fn torn_and_corrupt_records_are_told_apart() {
        let mut out = Vec::new();
        encode(&sample()[0], &mut out);
        assert_eq!(read(&out[..out.len() - 1], 0), Read::Truncated);
        assert_eq!(read(&out[..5], 0), Read::Truncated);
        let mut flipped = out.clone();
        *flipped.last_mut().unwrap() ^= 0x55;
        assert!(matches!(read(&flipped, 0), Read::Corrupt(_)));
        let mut huge = out.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read(&huge, 0), Read::Corrupt(_)));
    }
}
