//! Changes described as room events: a pure function of the mutation and
//! the [`Delta`] the state reported while applying it.
//!
//! Only real changes make events: adding a member twice announces one join.
//! Releasing a room announces `room_released`, not a `member_left` per
//! member. Event data is a JSON object that always names the room (`rid`);
//! times inside it are Unix seconds, like the rest of the room API.

use serde_json::json;

use crate::model::{BanScope, Delta, Event, EventName, MemberChangeKind, Mode, Mutation, Role, Schedule};

fn window(schedule: &Schedule) -> serde_json::Value {
    json!({
        "valid_from": schedule.valid_from_ms / 1000,
        "valid_until": schedule.valid_until_ms / 1000,
        "max_seconds": schedule.max_seconds,
        "release_threshold": schedule.release_threshold,
        "idle_seconds": schedule.idle_seconds,
        "auto_extend": schedule.auto_extend,
    })
}

/// `{"rid":…,"role":…,"mode":…}`, written directly: member events are the
/// most frequent, and this spares building a JSON tree for each.
fn member_data(rid: i64, role: Role, mode: Mode) -> String {
    format!(r#"{{"rid":{rid},"role":"{}","mode":{}}}"#, role.as_str(), mode.code())
}

fn with_rid(rid: i64, mut data: serde_json::Value) -> String {
    if let Some(map) = data.as_object_mut() {
        map.insert("rid".into(), rid.into());
    }
    data.to_string()
}

/// `ban_expired` for a ban that ran out at `expiry`.
pub(crate) fn ban_expired(pid: i64, rid: i64, uid: i64, scope: BanScope, expiry: i64, now_ms: i64) -> Event {
    let data = json!({"scope": scope.name(), "expired_at": expiry.div_euclid(1000)});
    Event {
        pid,
        name: EventName::BanExpired,
        rid,
        uid: Some(uid),
        time_ms: now_ms,
        data: with_rid(rid, data),
        endpoint: String::new(),
    }
}

/// The events of `mutation`, which changed what `delta` says, at `now_ms`.
pub(crate) fn describe(mutation: &Mutation, delta: &Delta, now_ms: i64) -> Vec<Event> {
    let (pid, rid) = mutation.room();
    let event = |name, uid, data| Event {
        pid,
        name,
        rid,
        uid,
        time_ms: now_ms,
        data: with_rid(rid, data),
        endpoint: String::new(),
    };
    match (mutation, delta) {
        (_, Delta::Members(changes)) => changes
            .iter()
            .map(|change| {
                let (name, data) = match change.kind {
                    MemberChangeKind::Joined => {
                        (EventName::MemberJoined, member_data(rid, change.participant.role, change.participant.mode))
                    }
                    MemberChangeKind::Updated => {
                        (EventName::MemberUpdated, member_data(rid, change.participant.role, change.participant.mode))
                    }
                    MemberChangeKind::Left => (EventName::MemberLeft, with_rid(rid, json!({}))),
                };
                Event { pid, name, rid, uid: Some(change.uid), time_ms: now_ms, data, endpoint: String::new() }
            })
            .collect(),
        (_, Delta::Info { oinfo, pinfo }) => {
            let mut data = serde_json::Map::new();
            if let Some(o) = oinfo {
                data.insert("oinfo".into(), o.as_str().into());
            }
            if let Some(p) = pinfo {
                data.insert("pinfo".into(), p.as_str().into());
            }
            vec![event(EventName::InfoChanged, None, data.into())]
        }
        (Mutation::AddBan { scope, uid, expires_at_ms, .. }, Delta::Ban { before, .. }) => {
            let expiry = expires_at_ms.unwrap_or(i64::MAX);
            if *before == Some(expiry) {
                return Vec::new(); // a retry of the same ban
            }
            let mut events = Vec::new();
            if let Some(expired) = before.filter(|&e| e <= now_ms) {
                // Replaced before the purge saw it: it did expire.
                events.push(ban_expired(pid, rid, *uid, *scope, expired, now_ms));
            }
            let expires_at = expires_at_ms.map_or(0, |ms| ms.div_euclid(1000));
            let data = json!({"scope": scope.name(), "expires_at": expires_at});
            events.push(event(EventName::BanAdded, Some(*uid), data));
            events
        }
        (Mutation::RemoveBan { scope, uid, .. }, Delta::Ban { before: Some(expiry), .. }) if *expiry > now_ms => {
            vec![event(EventName::BanRemoved, Some(*uid), json!({"scope": scope.name()}))]
        }
        (Mutation::RemoveBan { scope, uid, .. }, Delta::Ban { before: Some(expired), .. }) => {
            // Lifted after it ran out but before the purge saw it.
            vec![ban_expired(pid, rid, *uid, *scope, *expired, now_ms)]
        }
        (Mutation::CreateRoom { schedule, oinfo, pinfo, .. }, Delta::RoomCreated) => {
            let mut events = vec![event(EventName::RoomCreated, None, window(schedule))];
            let mut info = serde_json::Map::new();
            for (name, value) in [("oinfo", oinfo), ("pinfo", pinfo)] {
                if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                    info.insert(name.into(), value.as_str().into());
                }
            }
            if !info.is_empty() {
                events.push(event(EventName::InfoChanged, None, info.into()));
            }
            events
        }
        (_, Delta::Schedule { after, .. }) => vec![event(EventName::RoomUpdated, None, window(after))],
        (Mutation::ReleaseRoom { reason, .. }, Delta::Released { schedule, .. }) => {
            let begin_time = schedule.map_or(0, |s| s.begin_ms / 1000);
            let data = json!({"begin_time": begin_time, "end_time": now_ms.div_euclid(1000), "reason": reason});
            vec![event(EventName::RoomReleased, None, data)]
        }
        _ => Vec::new(),
    }
}
