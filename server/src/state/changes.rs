//! Mutations described as room events.
//!
//! When someone listens, the commit step reads what a mutation is about to
//! change ([`Prior`]) and, once it is applied, describes the change as
//! events. Only real
//! changes make events: adding a member twice announces one join. Releasing
//! a room announces `room_released`, not a `member_left` per member.
//!
//! Event data is a JSON object that always names the room (`rid`); times
//! inside it are Unix seconds, like the rest of the room API.

use serde_json::json;

use super::State;
use crate::model::{BanKey, BanScope, Event, EventName, Mode, Mutation, Role, RoomKey, Schedule};

/// What a mutation is about to change.
pub(crate) enum Prior {
    Nothing,
    /// Users whose membership changes (joining or leaving).
    Uids(Vec<i64>),
    /// Each upserted user: `None` if not a member, else their role.
    Roles(Vec<(i64, Option<Role>)>),
    /// Whether the member's mode differs from the new one.
    ModeChanges(bool),
    Info(String, String),
    /// The ban's expiry before the change, if it was held.
    Ban(Option<i64>),
    /// The room existed, with this schedule (if scheduled).
    Room(bool, Option<Schedule>),
}

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

impl State {
    /// What `mutation` is about to change.
    pub(crate) fn prior(&self, mutation: &Mutation) -> Prior {
        match mutation {
            Mutation::AddMembers { pid, rid, uids, .. } => {
                let mut new = self.membership_among(RoomKey { pid: *pid, rid: *rid }, uids, false);
                new.sort_unstable();
                new.dedup();
                Prior::Uids(new)
            }
            Mutation::RemoveMembers { pid, rid, uids } => {
                let mut gone = self.membership_among(RoomKey { pid: *pid, rid: *rid }, uids, true);
                gone.sort_unstable();
                gone.dedup();
                Prior::Uids(gone)
            }
            Mutation::UpsertMembers { pid, rid, members, .. } => {
                let key = RoomKey { pid: *pid, rid: *rid };
                Prior::Roles(members.iter().map(|m| (m.uid, self.participant(key, m.uid).map(|p| p.role))).collect())
            }
            Mutation::SetMemberMode { pid, rid, uid, mode } => {
                let member = self.participant(RoomKey { pid: *pid, rid: *rid }, *uid);
                Prior::ModeChanges(member.is_some_and(|m| m.mode != *mode))
            }
            Mutation::SetRoomInfo { pid, rid, .. } => {
                let (oinfo, pinfo) = self.room_info(RoomKey { pid: *pid, rid: *rid });
                Prior::Info(oinfo, pinfo)
            }
            Mutation::AddBan { pid, scope, uid, .. } | Mutation::RemoveBan { pid, scope, uid } => {
                Prior::Ban(self.inner.bans.expiry(&BanKey { pid: *pid, scope: *scope, uid: *uid }))
            }
            Mutation::ReleaseRoom { pid, rid, .. }
            | Mutation::ExtendRoom { pid, rid, .. }
            | Mutation::UpdateRoom { pid, rid, .. } => {
                let key = RoomKey { pid: *pid, rid: *rid };
                Prior::Room(self.room_exists(key), self.schedule(key))
            }
            Mutation::CreateRoom { .. } | Mutation::RoomBegan { .. } | Mutation::RestoreParticipants { .. } => {
                Prior::Nothing
            }
        }
    }

    /// The events of a mutation that was just applied.
    pub(crate) fn describe(&self, mutation: &Mutation, prior: Prior, now_ms: i64) -> Vec<Event> {
        let (pid, rid) = mutation.room();
        let key = RoomKey { pid, rid };
        let event = |name, uid, data| Event { pid, name, rid, uid, time_ms: now_ms, data: with_rid(rid, data) };
        let member = |name, uid| {
            let m = self.participant(key, uid).unwrap_or_default();
            Event { pid, name, rid, uid: Some(uid), time_ms: now_ms, data: member_data(rid, m.role, m.mode) }
        };
        match (mutation, prior) {
            (Mutation::AddMembers { .. }, Prior::Uids(joined)) => {
                // A member added this way is an attendee in mode 1.
                let data = member_data(rid, Role::Attendee, Mode::SendReceive);
                let event_for = |uid| Event {
                    pid,
                    name: EventName::MemberJoined,
                    rid,
                    uid: Some(uid),
                    time_ms: now_ms,
                    data: data.clone(),
                };
                joined.into_iter().map(event_for).collect()
            }
            (Mutation::RemoveMembers { .. }, Prior::Uids(left)) => {
                left.into_iter().map(|uid| event(EventName::MemberLeft, Some(uid), json!({}))).collect()
            }
            (Mutation::UpsertMembers { .. }, Prior::Roles(before)) => {
                let mut seen = std::collections::HashSet::new();
                before
                    .into_iter()
                    .filter(|(uid, _)| seen.insert(*uid))
                    .filter_map(|(uid, role)| match role {
                        None => Some(member(EventName::MemberJoined, uid)),
                        Some(role) if Some(role) != self.participant(key, uid).map(|p| p.role) => {
                            Some(member(EventName::MemberUpdated, uid))
                        }
                        Some(_) => None,
                    })
                    .collect()
            }
            (Mutation::SetMemberMode { uid, .. }, Prior::ModeChanges(true)) => {
                vec![member(EventName::MemberUpdated, *uid)]
            }
            (Mutation::SetRoomInfo { oinfo, pinfo, .. }, Prior::Info(old_o, old_p)) => {
                let mut data = serde_json::Map::new();
                if let Some(o) = oinfo.as_ref().filter(|o| **o != old_o) {
                    data.insert("oinfo".into(), o.as_str().into());
                }
                if let Some(p) = pinfo.as_ref().filter(|p| **p != old_p) {
                    data.insert("pinfo".into(), p.as_str().into());
                }
                if data.is_empty() {
                    return Vec::new();
                }
                vec![event(EventName::InfoChanged, None, data.into())]
            }
            (Mutation::AddBan { scope, uid, expires_at_ms, .. }, Prior::Ban(before)) => {
                let expiry = expires_at_ms.unwrap_or(i64::MAX);
                if before == Some(expiry) {
                    return Vec::new(); // a retry of the same ban
                }
                let mut events = Vec::new();
                if let Some(expired) = before.filter(|&e| e <= now_ms) {
                    // Replaced before the purge saw it: it did expire.
                    events.push(self.ban_expired_event(pid, rid, *uid, *scope, expired, now_ms));
                }
                let expires_at = expires_at_ms.map_or(0, |ms| ms.div_euclid(1000));
                let data = json!({"scope": scope.name(), "expires_at": expires_at});
                events.push(event(EventName::BanAdded, Some(*uid), data));
                events
            }
            (Mutation::RemoveBan { scope, uid, .. }, Prior::Ban(Some(expiry))) if expiry > now_ms => {
                vec![event(EventName::BanRemoved, Some(*uid), json!({"scope": scope.name()}))]
            }
            (Mutation::RemoveBan { scope, uid, .. }, Prior::Ban(Some(expired))) => {
                // Lifted after it ran out but before the purge saw it.
                vec![self.ban_expired_event(pid, rid, *uid, *scope, expired, now_ms)]
            }
            (Mutation::CreateRoom { schedule, oinfo, pinfo, .. }, _) => {
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
            (Mutation::ExtendRoom { .. } | Mutation::UpdateRoom { .. }, Prior::Room(_, Some(before))) => {
                // Only a real change is announced (an update to the same values is not).
                self.schedule(key)
                    .filter(|after| *after != before)
                    .map(|after| event(EventName::RoomUpdated, None, window(&after)))
                    .into_iter()
                    .collect()
            }
            (Mutation::ReleaseRoom { reason, .. }, Prior::Room(true, schedule)) => {
                let begin_time = schedule.map_or(0, |s| s.begin_ms / 1000);
                let data = json!({"begin_time": begin_time, "end_time": now_ms.div_euclid(1000), "reason": reason});
                vec![event(EventName::RoomReleased, None, data)]
            }
            _ => Vec::new(),
        }
    }

    /// `ban_expired` for a ban that ran out at `expiry`.
    pub(crate) fn ban_expired_event(
        &self,
        pid: i64,
        rid: i64,
        uid: i64,
        scope: BanScope,
        expiry: i64,
        now_ms: i64,
    ) -> Event {
        let data = json!({"scope": scope.name(), "expired_at": expiry.div_euclid(1000)});
        Event { pid, name: EventName::BanExpired, rid, uid: Some(uid), time_ms: now_ms, data: with_rid(rid, data) }
    }
}
