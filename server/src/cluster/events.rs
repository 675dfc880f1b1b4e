//! The Redis functions' change records, turned into [`Mutation`]s. I/O-free.
//!
//! A published (and logged) message is msgpack `[epoch, seq, at_ms,
//! changes, link]` (`link`: the previous message's [`digest`]; in a
//! partition load, the newest message's); a change is an array of strings (ids stay decimal strings in
//! Lua, which has only doubles):
//!
//! | change | fields |
//! |---|---|
//! | `add` | pid, rid, at_ms, uid… |
//! | `rm` | pid, rid, uid… |
//! | `leave` | pid, rid, uid (the user left by themself: no `kickoutroom`) |
//! | `upsert` | pid, rid, at_ms, then uid, role (`presenter`, `attendee`, `consumer`) pairs |
//! | `release` | pid, rid, reason (`expired`, `max_duration`, `threshold`, `idle`, `deleted`; the first, second and fourth are the server's decisions) |
//! | `mode` | pid, rid, uid, mode (`1`..`4`) |
//! | `revoke` | pid, uid, at_ms (login tokens issued until then stop working) |
//! | `kick` | pid, uid, except (`node:session` or empty), close (`1`/`0`): a login elsewhere, and whether to close the user's other sessions |
//! | `msg` | pid, rid, from, mid, mtype, kind (`t`/`b`), body, attrs, mtime, origin (`node:session` or empty) |
//! | `info` | pid, rid, has_oinfo (`0`/`1`), oinfo, has_pinfo, pinfo |
//! | `ban` | pid, scope (`r<rid>`, `all`, `black`), uid, expires_at_ms (`-` = permanent) |
//! | `unban` | pid, scope, uid |
//! | `create` | pid, rid, valid_from_ms, valid_until_ms, max_seconds, release_threshold, idle_seconds, has_oinfo, oinfo, has_pinfo, pinfo (a scheduled room) |
//! | `update` | pid, rid, valid_from_ms, valid_until_ms, max_seconds, release_threshold, idle_seconds |
//! | `extend` | pid, rid, valid_until_ms, auto_extend (`1`/`0`), then `auto` for the server's own extension |
//! | `began` | pid, rid, at_ms (a scheduled room's second member joined) |
//! | `joined` | pid, rid, then uid, joined_at_ms pairs: members' join times, in a load only |
//! | `sched` | pid, rid, valid_from_ms, valid_until_ms, max_seconds, release_threshold, idle_seconds, begin_ms, auto_extend: a scheduled room's whole schedule, in a load only |

use crate::model::{
    BanScope, Body, MemberRole, Mode, Mutation, ReleaseReason, Role, RoomKey, RoomMessage, Schedule, UserKey,
};

/// One change of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A state change.
    State(Mutation),
    /// A state change `user` made about themself (entering or leaving as a client).
    ByUser(Mutation, UserKey),
    /// A state change the server decided by itself, at a deadline.
    Decided(Mutation),
    /// `close`: close every session of `user` but `except` (a `(node,
    /// session)`); `except` set: the user logged in there (other nodes end
    /// their relogin grace for the user).
    Kick { user: UserKey, except: Option<(u64, u64)>, close: bool, seq: u64 },
    /// A room message, and where it was sent from (its sender's own
    /// session does not receive it).
    Message { message: RoomMessage, origin: Option<(u64, u64)> },
    /// A scheduled room's whole schedule (a partition load): made so in the
    /// cache, with events only for what differs.
    Schedule { room: RoomKey, schedule: Schedule },
    /// Members' join times (a partition load), after their roles and modes.
    Joined { room: RoomKey, times: Vec<(i64, i64)> },
}

/// One partition message: the changes of one function call, or a whole
/// partition's state (`rtm_load`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) epoch: String,
    pub(crate) seq: u64,
    pub(crate) at_ms: i64,
    pub(crate) changes: Vec<Change>,
    /// The previous message's digest (a load: the newest message's); empty
    /// from libraries before the chain.
    pub(crate) link: String,
}

/// A message's digest, as the functions store it in `meta.last`: the first
/// 16 hex digits of its SHA-1.
pub(crate) fn digest(bytes: &[u8]) -> String {
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes);
    sha1.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The message as msgpack gives it (a library before the chain sent four fields).
#[derive(serde::Deserialize)]
struct RawBatch {
    epoch: String,
    seq: u64,
    at_ms: String,
    changes: Vec<Vec<Field>>,
    #[serde(default)]
    link: String,
}

/// Why a message could not be read (a newer library, or corruption).
#[derive(Debug, thiserror::Error)]
#[error("unreadable partition message: {0}")]
pub(crate) struct BadMessage(String);

impl Batch {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, BadMessage> {
        let raw: RawBatch = rmp_serde::from_slice(bytes).map_err(|e| BadMessage(e.to_string()))?;
        let at_ms = number(&raw.at_ms)?;
        let mut changes: Vec<Change> = raw.changes.iter().map(|c| change(c)).collect::<Result<_, _>>()?;
        for change in &mut changes {
            if let Change::Kick { seq, .. } = change {
                *seq = raw.seq;
            }
        }
        Ok(Self { epoch: raw.epoch, seq: raw.seq, at_ms, changes, link: raw.link })
    }
}

/// One field of a change: bytes (Lua strings are bytes; a binary message
/// body is not UTF-8, and `cmsgpack` packs every string as msgpack `str`).
struct Field(Vec<u8>);

impl<'de> serde::Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Field;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or bytes")
            }
            fn visit_str<E>(self, v: &str) -> Result<Field, E> {
                Ok(Field(v.as_bytes().to_vec()))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Field, E> {
                Ok(Field(v.to_vec()))
            }
        }
        deserializer.deserialize_bytes(Visitor)
    }
}

fn number(s: &str) -> Result<i64, BadMessage> {
    s.parse().map_err(|_| BadMessage(format!("'{s}' is not a number")))
}

/// A schedule's count or duration (`u32`).
fn small(s: &str) -> Result<u32, BadMessage> {
    s.parse().map_err(|_| BadMessage(format!("'{s}' is not a count")))
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

/// A release reason's name in changes.
pub(crate) fn reason_name(reason: ReleaseReason) -> &'static str {
    match reason {
        ReleaseReason::Expired => "expired",
        ReleaseReason::MaxDuration => "max_duration",
        ReleaseReason::Threshold => "threshold",
        ReleaseReason::Idle => "idle",
        ReleaseReason::Deleted => "deleted",
    }
}

fn reason(s: &str) -> Result<ReleaseReason, BadMessage> {
    [
        ReleaseReason::Expired,
        ReleaseReason::MaxDuration,
        ReleaseReason::Threshold,
        ReleaseReason::Idle,
        ReleaseReason::Deleted,
    ]
    .into_iter()
    .find(|r| reason_name(*r) == s)
    .ok_or_else(|| BadMessage(format!("unknown release reason '{s}'")))
}

fn uids(raw: &[Field], from: usize) -> Result<Vec<i64>, BadMessage> {
    raw.iter().skip(from).map(|f| number(std::str::from_utf8(&f.0).unwrap_or(""))).collect()
}

fn change(raw: &[Field]) -> Result<Change, BadMessage> {
    let field = |i: usize| match raw.get(i) {
        None => Err(BadMessage(format!("change field {i} missing"))),
        Some(Field(bytes)) => {
            std::str::from_utf8(bytes).map_err(|_| BadMessage(format!("change field {i} is not text")))
        }
    };
    let op = field(0)?;
    let pid = number(field(1)?)?;
    // Fields 3-7 of create, update and sched: the window and the policies.
    let window = || -> Result<Schedule, BadMessage> {
        Ok(Schedule {
            valid_from_ms: number(field(3)?)?,
            valid_until_ms: number(field(4)?)?,
            max_seconds: small(field(5)?)?,
            release_threshold: small(field(6)?)?,
            idle_seconds: small(field(7)?)?,
            begin_ms: 0,
            auto_extend: false,
        })
    };
    let mutation = match op {
        "add" => Mutation::AddMembers { pid, rid: number(field(2)?)?, at_ms: number(field(3)?)?, uids: uids(raw, 4)? },
        "rm" => Mutation::RemoveMembers { pid, rid: number(field(2)?)?, uids: uids(raw, 3)? },
        "leave" => {
            let (rid, uid) = (number(field(2)?)?, number(field(3)?)?);
            let removal = Mutation::RemoveMembers { pid, rid, uids: vec![uid] };
            return Ok(Change::ByUser(removal, UserKey { pid, uid }));
        }
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
        "upsert" => {
            let mut members = Vec::new();
            for i in (4..raw.len()).step_by(2) {
                let role = match field(i + 1)? {
                    "presenter" => Role::Presenter,
                    "consumer" => Role::Consumer,
                    "attendee" => Role::Attendee,
                    other => return Err(BadMessage(format!("unknown role '{other}'"))),
                };
                members.push(MemberRole { uid: number(field(i)?)?, role });
            }
            Mutation::UpsertMembers { pid, rid: number(field(2)?)?, members, at_ms: number(field(3)?)? }
        }
        "release" => {
            let release = Mutation::ReleaseRoom { pid, rid: number(field(2)?)?, reason: reason(field(3)?)? };
            return Ok(match reason(field(3)?)? {
                ReleaseReason::Expired | ReleaseReason::MaxDuration | ReleaseReason::Idle => Change::Decided(release),
                ReleaseReason::Threshold | ReleaseReason::Deleted => Change::State(release),
            });
        }
        "mode" => Mutation::SetMemberMode {
            pid,
            rid: number(field(2)?)?,
            uid: number(field(3)?)?,
            mode: Mode::from_code(number(field(4)?)?).ok_or_else(|| BadMessage("bad mode".into()))?,
        },
        "revoke" => Mutation::RevokeTokens { pid, uid: number(field(2)?)?, at_ms: number(field(3)?)? },
        "msg" => return message(pid, raw, field),
        "create" => {
            let optional = |flag: &str, value: &str| (flag == "1").then(|| value.to_owned());
            Mutation::CreateRoom {
                pid,
                rid: number(field(2)?)?,
                schedule: window()?,
                oinfo: optional(field(8)?, field(9)?),
                pinfo: optional(field(10)?, field(11)?),
            }
        }
        "update" => {
            let window = window()?;
            Mutation::UpdateRoom {
                pid,
                rid: number(field(2)?)?,
                valid_from_ms: window.valid_from_ms,
                valid_until_ms: window.valid_until_ms,
                max_seconds: window.max_seconds,
                release_threshold: window.release_threshold,
                idle_seconds: window.idle_seconds,
            }
        }
        "extend" => {
            let extend = Mutation::ExtendRoom {
                pid,
                rid: number(field(2)?)?,
                valid_until_ms: number(field(3)?)?,
                auto_extend: field(4)? == "1",
            };
            return Ok(if raw.len() > 5 && field(5)? == "auto" {
                Change::Decided(extend)
            } else {
                Change::State(extend)
            });
        }
        "began" => Mutation::RoomBegan { pid, rid: number(field(2)?)?, at_ms: number(field(3)?)? },
        "joined" => {
            let room = RoomKey { pid, rid: number(field(2)?)? };
            let mut times = Vec::new();
            for i in (3..raw.len()).step_by(2) {
                times.push((number(field(i)?)?, number(field(i + 1)?)?));
            }
            return Ok(Change::Joined { room, times });
        }
        "sched" => {
            let room = RoomKey { pid, rid: number(field(2)?)? };
            let schedule = Schedule { begin_ms: number(field(8)?)?, auto_extend: field(9)? == "1", ..window()? };
            return Ok(Change::Schedule { room, schedule });
        }
        "kick" => {
            let user = UserKey { pid, uid: number(field(2)?)? };
            // Older libraries sent no close flag: they only closed.
            let close = raw.len() < 5 || field(4)? == "1";
            // `seq` is the message's, filled in by `Batch::decode`.
            return Ok(Change::Kick { user, except: origin(field(3)?)?, close, seq: 0 });
        }
        _ => return Err(BadMessage(format!("unknown change '{op}'"))),
    };
    Ok(Change::State(mutation))
}

/// `node:session`, or nothing.
fn origin(text: &str) -> Result<Option<(u64, u64)>, BadMessage> {
    match text.split_once(':') {
        Some((node, session)) => Ok(Some((
            node.parse().map_err(|_| BadMessage(format!("bad origin node '{node}'")))?,
            session.parse().map_err(|_| BadMessage(format!("bad origin session '{session}'")))?,
        ))),
        None => Ok(None),
    }
}

fn message<'a>(
    pid: i64,
    raw: &'a [Field],
    field: impl Fn(usize) -> Result<&'a str, BadMessage>,
) -> Result<Change, BadMessage> {
    let body = match field(6)? {
        "b" => Body::Binary(raw.get(7).map(|f| f.0.clone()).unwrap_or_default()),
        _ => Body::Text(field(7)?.to_owned()),
    };
    let origin = origin(field(10)?)?;
    let message = RoomMessage {
        pid,
        rid: number(field(2)?)?,
        from: number(field(3)?)?,
        mid: number(field(4)?)?,
        mtype: number(field(5)?)?,
        body,
        attrs: field(8)?.to_owned(),
        mtime: number(field(9)?)?,
    };
    Ok(Change::Message { message, origin })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(changes: Vec<Vec<&str>>) -> Vec<u8> {
        rmp_serde::to_vec(&("e1", 7u64, "1700000000000", changes)).unwrap()
    }

    fn state(changes: Vec<Mutation>) -> Vec<Change> {
        changes.into_iter().map(Change::State).collect()
    }

    #[test]
    fn decodes_scheduled_room_changes() {
        let bytes = pack(vec![
            vec!["create", "5", "7", "1000", "61000", "60", "2", "30", "1", "open", "0", ""],
            vec!["update", "5", "7", "2000", "62000", "0", "0", "10"],
            vec!["extend", "5", "7", "962000", "1"],
            vec!["began", "5", "7", "3000"],
            vec!["sched", "5", "7", "2000", "962000", "0", "0", "10", "3000", "1"],
        ]);
        let changes = Batch::decode(&bytes).unwrap().changes;
        let window = Schedule {
            valid_from_ms: 1000,
            valid_until_ms: 61_000,
            max_seconds: 60,
            release_threshold: 2,
            idle_seconds: 30,
            begin_ms: 0,
            auto_extend: false,
        };
        assert_eq!(
            changes[..4],
            state(vec![
                Mutation::CreateRoom { pid: 5, rid: 7, schedule: window, oinfo: Some("open".into()), pinfo: None },
                Mutation::UpdateRoom {
                    pid: 5,
                    rid: 7,
                    valid_from_ms: 2000,
                    valid_until_ms: 62_000,
                    max_seconds: 0,
                    release_threshold: 0,
                    idle_seconds: 10
                },
                Mutation::ExtendRoom { pid: 5, rid: 7, valid_until_ms: 962_000, auto_extend: true },
                Mutation::RoomBegan { pid: 5, rid: 7, at_ms: 3000 },
            ])[..]
        );
        let loaded = Schedule {
            valid_from_ms: 2000,
            valid_until_ms: 962_000,
            max_seconds: 0,
            release_threshold: 0,
            idle_seconds: 10,
            begin_ms: 3000,
            auto_extend: true,
        };
        assert_eq!(changes[4], Change::Schedule { room: RoomKey { pid: 5, rid: 7 }, schedule: loaded });
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
            vec!["release", "5", "7", "deleted"],
            vec!["upsert", "5", "7", "1700000000000", "100", "consumer", "101", "presenter"],
            vec!["mode", "5", "7", "100", "3"],
            vec!["revoke", "5", "100", "1700000000000"],
        ]);
        let batch = Batch::decode(&bytes).unwrap();
        assert_eq!((batch.epoch.as_str(), batch.seq, batch.at_ms), ("e1", 7, 1_700_000_000_000));
        assert_eq!(
            batch.changes,
            state(vec![
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
                Mutation::ReleaseRoom { pid: 5, rid: 7, reason: ReleaseReason::Deleted },
                Mutation::UpsertMembers {
                    pid: 5,
                    rid: 7,
                    members: vec![
                        MemberRole { uid: 100, role: Role::Consumer },
                        MemberRole { uid: 101, role: Role::Presenter },
                    ],
                    at_ms: 1_700_000_000_000,
                },
                Mutation::SetMemberMode { pid: 5, rid: 7, uid: 100, mode: Mode::ReceiveOnly },
                Mutation::RevokeTokens { pid: 5, uid: 100, at_ms: 1_700_000_000_000 },
            ])
        );
        for scope in [BanScope::Room(-3), BanScope::AllRooms, BanScope::ProjectBlack] {
            assert_eq!(super::scope(&scope_name(scope)).unwrap(), scope);
        }
    }

    #[test]
    fn decodes_messages_text_and_binary_and_leaves() {
        // As cmsgpack packs a Lua string: msgpack `str`, whatever the bytes.
        let mut bytes = Vec::new();
        rmp::encode::write_array_len(&mut bytes, 4).unwrap();
        for s in ["e1", "3"] {
            if s == "3" {
                rmp::encode::write_uint(&mut bytes, 3).unwrap();
            } else {
                rmp::encode::write_str(&mut bytes, s).unwrap();
            }
        }
        rmp::encode::write_str(&mut bytes, "1700000000000").unwrap();
        rmp::encode::write_array_len(&mut bytes, 3).unwrap();
        let fields: [&[u8]; 11] =
            [b"msg", b"5", b"7", b"100", b"42", b"51", b"b", &[0xff, 0x00, 0xfe], b"a", b"1700000000001", b"9:4"];
        rmp::encode::write_array_len(&mut bytes, 11).unwrap();
        for f in fields {
            rmp::encode::write_str_len(&mut bytes, f.len() as u32).unwrap();
            bytes.extend_from_slice(f);
        }
        rmp::encode::write_array_len(&mut bytes, 11).unwrap();
        let text: [&[u8]; 11] = [b"msg", b"5", b"7", b"100", b"43", b"30", b"t", b"hi", b"", b"1700000000002", b""];
        for f in text {
            rmp::encode::write_str_len(&mut bytes, f.len() as u32).unwrap();
            bytes.extend_from_slice(f);
        }
        rmp::encode::write_array_len(&mut bytes, 4).unwrap();
        for f in ["leave", "5", "7", "100"] {
            rmp::encode::write_str(&mut bytes, f).unwrap();
        }
        let batch = Batch::decode(&bytes).unwrap();
        let message = |mid, mtype, body, attrs: &str, mtime| RoomMessage {
            pid: 5,
            rid: 7,
            from: 100,
            mid,
            mtype,
            body,
            attrs: attrs.into(),
            mtime,
        };
        assert_eq!(
            batch.changes,
            vec![
                Change::Message {
                    message: message(42, 51, Body::Binary(vec![0xff, 0, 0xfe]), "a", 1_700_000_000_001),
                    origin: Some((9, 4)),
                },
                Change::Message {
                    message: message(43, 30, Body::Text("hi".into()), "", 1_700_000_000_002),
                    origin: None
                },
                Change::ByUser(
                    Mutation::RemoveMembers { pid: 5, rid: 7, uids: vec![100] },
                    UserKey { pid: 5, uid: 100 }
                ),
            ]
        );
    }

    #[test]
    fn links_and_digests() {
        let linked = rmp_serde::to_vec(&("e1", 7u64, "0", Vec::<Vec<&str>>::new(), "0123456789abcdef")).unwrap();
        assert_eq!(Batch::decode(&linked).unwrap().link, "0123456789abcdef");
        assert_eq!(Batch::decode(&pack(vec![])).unwrap().link, "", "four fields: before the chain");
        // As Redis's redis.sha1hex(body):sub(1, 16).
        assert_eq!(digest(b"abc"), "a9993e364706816a");
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(Batch::decode(b"\x01").is_err());
        assert!(Batch::decode(&pack(vec![vec!["grow", "5"]])).is_err());
        assert!(Batch::decode(&pack(vec![vec!["add", "5"]])).is_err());
        assert!(Batch::decode(&pack(vec![vec!["add", "5", "7", "0", "x"]])).is_err());
    }
}
