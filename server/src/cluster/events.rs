//! The Redis functions' change records, turned into [`Mutation`]s. I/O-free.
//!
//! A published (and logged) message is msgpack `[epoch, seq, at_ms,
//! changes]`; a change is an array of strings (ids stay decimal strings in
//! Lua, which has only doubles):
//!
//! | change | fields |
//! |---|---|
//! | `add` | pid, rid, at_ms, uid… |
//! | `rm` | pid, rid, uid… |
//! | `info` | pid, rid, has_oinfo (`0`/`1`), oinfo, has_pinfo, pinfo |
//! | `ban` | pid, scope (`r<rid>`, `all`, `black`), uid, expires_at_ms (`-` = permanent) |
//! | `unban` | pid, scope, uid |

use crate::model::{BanScope, Mutation};

/// One partition message: the changes of one function call, or a whole
/// partition's state (`rtm_load`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) epoch: String,
    pub(crate) seq: u64,
    pub(crate) at_ms: i64,
    pub(crate) changes: Vec<Mutation>,
}

/// Why a message could not be read (a newer library, or corruption).
#[derive(Debug, thiserror::Error)]
#[error("unreadable partition message: {0}")]
pub(crate) struct BadMessage(String);

impl Batch {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, BadMessage> {
        let (epoch, seq, at_ms, raw): (String, u64, String, Vec<Vec<String>>) =
            rmp_serde::from_slice(bytes).map_err(|e| BadMessage(e.to_string()))?;
        let at_ms = number(&at_ms)?;
        let changes = raw.iter().map(|c| change(c)).collect::<Result<_, _>>()?;
        Ok(Self { epoch, seq, at_ms, changes })
    }
}

fn number(s: &str) -> Result<i64, BadMessage> {
    s.parse().map_err(|_| BadMessage(format!("'{s}' is not a number")))
}

/// The scope's name in keys and changes.
pub(crate) fn scope_name(scope: BanScope) -> String {
    match scope {
        BanScope::Room(rid) => format!("r{rid}"),
        BanScope::AllRooms => "all".into(),
        BanScope::ProjectBlack => "black".into(),
    }
}

fn scope(s: &str) -> Result<BanScope, BadMessage> {
    match s {
        "all" => Ok(BanScope::AllRooms),
        "black" => Ok(BanScope::ProjectBlack),
        _ => match s.strip_prefix('r') {
            Some(rid) => Ok(BanScope::Room(number(rid)?)),
            None => Err(BadMessage(format!("unknown ban scope '{s}'"))),
        },
    }
}

fn uids(fields: &[String]) -> Result<Vec<i64>, BadMessage> {
    fields.iter().map(|s| number(s)).collect()
}

fn change(fields: &[String]) -> Result<Mutation, BadMessage> {
    let field =
        |i: usize| fields.get(i).map(String::as_str).ok_or_else(|| BadMessage(format!("short change {fields:?}")));
    let op = field(0)?;
    let pid = number(field(1)?)?;
    Ok(match op {
        "add" => {
            Mutation::AddMembers { pid, rid: number(field(2)?)?, at_ms: number(field(3)?)?, uids: uids(&fields[4..])? }
        }
        "rm" => Mutation::RemoveMembers { pid, rid: number(field(2)?)?, uids: uids(&fields[3..])? },
        "info" => {
            let optional = |flag: &str, value: &str| (flag == "1").then(|| value.to_owned());
            Mutation::SetRoomInfo {
                pid,
                rid: number(field(2)?)?,
                oinfo: optional(field(3)?, field(4)?),
                pinfo: optional(field(5)?, field(6)?),
            }
        }
        "ban" => {
            let expires = field(4)?;
            Mutation::AddBan {
                pid,
                scope: scope(field(2)?)?,
                uid: number(field(3)?)?,
                expires_at_ms: if expires == "-" { None } else { Some(number(expires)?) },
            }
        }
        "unban" => Mutation::RemoveBan { pid, scope: scope(field(2)?)?, uid: number(field(3)?)? },
        _ => return Err(BadMessage(format!("unknown change '{op}'"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(changes: Vec<Vec<&str>>) -> Vec<u8> {
        rmp_serde::to_vec(&("e1", 7u64, "1700000000000", changes)).unwrap()
    }

    #[test]
    fn decodes_every_change() {
        let big = "9007199254740993"; // 2^53 + 1: exact only as a string
        let bytes = pack(vec![
            vec!["add", "5", "7", "1700000000000", "100", big],
            vec!["rm", "5", "7", "100"],
            vec!["info", "5", "7", "1", "open", "0", ""],
            vec!["ban", "5", "r7", "100", "1700000060000"],
            vec!["ban", "5", "black", "101", "-"],
            vec!["unban", "5", "all", "102"],
        ]);
        let batch = Batch::decode(&bytes).unwrap();
        assert_eq!((batch.epoch.as_str(), batch.seq, batch.at_ms), ("e1", 7, 1_700_000_000_000));
        assert_eq!(
            batch.changes,
            vec![
                Mutation::AddMembers {
                    pid: 5,
                    rid: 7,
                    uids: vec![100, 9_007_199_254_740_993],
                    at_ms: 1_700_000_000_000
                },
                Mutation::RemoveMembers { pid: 5, rid: 7, uids: vec![100] },
                Mutation::SetRoomInfo { pid: 5, rid: 7, oinfo: Some("open".into()), pinfo: None },
                Mutation::AddBan { pid: 5, scope: BanScope::Room(7), uid: 100, expires_at_ms: Some(1_700_000_060_000) },
                Mutation::AddBan { pid: 5, scope: BanScope::ProjectBlack, uid: 101, expires_at_ms: None },
                Mutation::RemoveBan { pid: 5, scope: BanScope::AllRooms, uid: 102 },
            ]
        );
        for scope in [BanScope::Room(-3), BanScope::AllRooms, BanScope::ProjectBlack] {
            assert_eq!(super::scope(&scope_name(scope)).unwrap(), scope);
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(Batch::decode(b"\x01").is_err());
        assert!(Batch::decode(&pack(vec![vec!["grow", "5"]])).is_err());
        assert!(Batch::decode(&pack(vec![vec!["add", "5"]])).is_err());
        assert!(Batch::decode(&pack(vec![vec!["add", "5", "7", "0", "x"]])).is_err());
    }
}
