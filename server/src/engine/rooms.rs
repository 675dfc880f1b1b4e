//! Room operations: create, update, extend, delete, keep alive, set info.

use rtm_protocol::ErrorCode;

use super::deadlines::EXTENSION_MS;
use super::Engine;
use crate::error::RtmError;
use crate::model::{MemberRole, Mutation, ReleaseReason, RoomKey, Schedule};

fn invalid(ex: String) -> RtmError {
    RtmError::new(ErrorCode::InvalidParameter, ex)
}

fn not_scheduled(rid: i64) -> RtmError {
    invalid(format!("room {rid} is not a scheduled room (create it with createroom)"))
}

/// A duration in seconds or a count, from 0 to `u32::MAX` (absent = 0).
pub(crate) fn non_negative(key: &str, value: Option<i64>) -> Result<u32, RtmError> {
    let n = value.unwrap_or(0);
    u32::try_from(n).map_err(|_| invalid(format!("'{key}' must be from 0 to {}, got {n}", u32::MAX)))
}

/// Refuses a window (Unix seconds) that ends before it starts or has ended.
pub(crate) fn check_window_bounds(valid_from: i64, valid_until: i64, now_ms: i64) -> Result<(), RtmError> {
    let now_secs = now_ms.div_euclid(1000);
    if valid_until <= valid_from {
        return Err(invalid(format!("valid_until ({valid_until}) must be after valid_from ({valid_from})")));
    }
    if valid_until <= now_secs {
        return Err(invalid(format!("the window ends at {valid_until}, which is in the past (now {now_secs})")));
    }
    Ok(())
}

/// A room for [`Engine::create_room`], its window already checked.
pub(crate) struct NewRoom {
    /// `None`: the engine picks an unused id.
    pub(crate) rid: Option<i64>,
    pub(crate) schedule: Schedule,
    pub(crate) oinfo: Option<String>,
    pub(crate) pinfo: Option<String>,
    /// Members to add at once (the window must be open).
    pub(crate) members: Vec<MemberRole>,
}

/// New window and policies for [`Engine::update_room`]; `None` keeps a value.
/// Times are Unix seconds.
pub(crate) struct PolicyChange {
    pub(crate) valid_from: Option<i64>,
    pub(crate) valid_until: Option<i64>,
    pub(crate) max_seconds: Option<i64>,
    pub(crate) release_threshold: Option<i64>,
    pub(crate) idle_seconds: Option<i64>,
}

impl Engine {
    /// Creates a scheduled room; returns its id. Refused if the room exists
    /// (scheduled, or implicit with members or info).
    pub(crate) async fn create_room(&self, pid: i64, room: NewRoom, now_ms: i64) -> Result<i64, RtmError> {
        if let Some(remote) = self.remote() {
            return Box::pin(self.create_room_in_redis(remote, pid, room, now_ms)).await;
        }
        if !room.members.is_empty() && !room.schedule.is_open(now_ms) {
            return Err(RtmError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "members can join from {} (Unix seconds); add them once the window is open",
                    room.schedule.valid_from_ms / 1000
                ),
            ));
        }
        let rid = room.rid.unwrap_or_else(|| self.fresh_rid(now_ms));
        let key = RoomKey { pid, rid };
        let _room = self.lock(key);
        if self.state().room_exists(key) {
            return Err(invalid(format!("room {rid} already exists")));
        }
        let NewRoom { schedule, oinfo, pinfo, members, .. } = room;
        self.commit().apply(Mutation::CreateRoom { pid, rid, schedule, oinfo, pinfo });
        if !members.is_empty() {
            self.upsert_members_locked(key, members, now_ms)?;
        }
        Ok(rid)
    }

    async fn create_room_in_redis(
        &self,
        remote: &super::Remote,
        pid: i64,
        room: NewRoom,
        now_ms: i64,
    ) -> Result<i64, RtmError> {
        let NewRoom { rid, schedule, oinfo, pinfo, members } = room;
        let mut attempt = 0;
        loop {
            let key = RoomKey { pid, rid: rid.unwrap_or_else(|| self.fresh_rid(now_ms)) };
            match remote.create_room(key, &schedule, oinfo.clone(), pinfo.clone(), &members).await {
                // An id this node picked may be another node's pick too: pick again.
                Err(e) if rid.is_none() && attempt < 3 && e.ex.contains("already exists") => attempt += 1,
                made => return made.map(|()| key.rid),
            }
        }
    }

    /// Changes a scheduled room's window and policies; returns the new
    /// schedule. The new deadlines take effect at once.
    pub(crate) async fn update_room(
        &self,
        key: RoomKey,
        change: PolicyChange,
        now_ms: i64,
    ) -> Result<Schedule, RtmError> {
        if let Some(remote) = self.remote() {
            // Given values are checked here; the window against the current one, in Redis.
            for (name, value) in [
                ("max_seconds", change.max_seconds),
                ("release_threshold", change.release_threshold),
                ("idle_seconds", change.idle_seconds),
            ] {
                if value.is_some() {
                    non_negative(name, value)?;
                }
            }
            let values = [
                change.valid_from,
                change.valid_until,
                change.max_seconds,
                change.release_threshold,
                change.idle_seconds,
            ];
            Box::pin(remote.update_room(key, values)).await?;
            return self.state().schedule(key).ok_or_else(|| not_scheduled(key.rid));
        }
        let _room = self.lock(key);
        let schedule = self.state().schedule(key).ok_or_else(|| not_scheduled(key.rid))?;
        let valid_from = change.valid_from.unwrap_or(schedule.valid_from_ms / 1000);
        let valid_until = change.valid_until.unwrap_or(schedule.valid_until_ms / 1000);
        check_window_bounds(valid_from, valid_until, now_ms)?;
        let keep =
            |value: Option<i64>, current: u32, name: &str| non_negative(name, Some(value.unwrap_or(current.into())));
        let max_seconds = keep(change.max_seconds, schedule.max_seconds, "max_seconds")?;
        let release_threshold = keep(change.release_threshold, schedule.release_threshold, "release_threshold")?;
        let idle_seconds = keep(change.idle_seconds, schedule.idle_seconds, "idle_seconds")?;
        self.commit().apply(Mutation::UpdateRoom {
            pid: key.pid,
            rid: key.rid,
            valid_from_ms: valid_from.saturating_mul(1000),
            valid_until_ms: valid_until.saturating_mul(1000),
            max_seconds,
            release_threshold,
            idle_seconds,
        });
        self.state().touch(key, now_ms);
        Ok(self.state().schedule(key).unwrap_or(schedule))
    }

    /// Pushes a scheduled room's end out by `minutes` (default 15) and sets
    /// automatic extension if `auto` is given; `auto` alone leaves the end
    /// where it is. Returns the new schedule. Concurrent extensions each
    /// count: the end is read and written under the room's lock.
    pub(crate) async fn extend_room(
        &self,
        key: RoomKey,
        minutes: Option<i64>,
        auto: Option<bool>,
        now_ms: i64,
    ) -> Result<Schedule, RtmError> {
        let extension_ms = match (minutes, auto) {
            (Some(m), _) if m <= 0 => return Err(invalid(format!("'minutes' must be positive, got {m}"))),
            (Some(m), _) => m.saturating_mul(60_000),
            (None, Some(_)) => 0,
            (None, None) => EXTENSION_MS,
        };
        if let Some(remote) = self.remote() {
            let (valid_until_ms, auto_extend) = Box::pin(remote.extend_room(key, extension_ms, auto)).await?;
            let schedule = self.state().schedule(key).ok_or_else(|| not_scheduled(key.rid))?;
            return Ok(Schedule { valid_until_ms, auto_extend, ..schedule });
        }
        let _room = self.lock(key);
        let schedule = self.state().schedule(key).ok_or_else(|| not_scheduled(key.rid))?;
        let valid_until_ms = schedule.valid_until_ms.saturating_add(extension_ms);
        let auto_extend = auto.unwrap_or(schedule.auto_extend);
        self.state().touch(key, now_ms);
        self.commit().apply(Mutation::ExtendRoom { pid: key.pid, rid: key.rid, valid_until_ms, auto_extend });
        Ok(Schedule { valid_until_ms, auto_extend, ..schedule })
    }

    /// Releases a room at once (`deleteroom`): members, info and schedule go.
    pub(crate) async fn delete_room(&self, key: RoomKey) -> Result<(), RtmError> {
        if let Some(remote) = self.remote() {
            return Box::pin(remote.release(key, ReleaseReason::Deleted)).await;
        }
        let _room = self.lock(key);
        let reason = ReleaseReason::Deleted;
        self.commit().apply(Mutation::ReleaseRoom { pid: key.pid, rid: key.rid, reason });
        Ok(())
    }

    /// Resets a room's idle clock; refused if the room does not exist.
    pub(crate) async fn keep_alive(&self, key: RoomKey, now_ms: i64) -> Result<(), RtmError> {
        if let Some(remote) = self.remote() {
            return Box::pin(remote.keep_alive(key)).await;
        }
        if !self.state().room_exists(key) {
            return Err(invalid(format!("room {} does not exist", key.rid)));
        }
        self.state().touch(key, now_ms);
        Ok(())
    }

    /// Replaces the given parts of a room's info (`None` = unchanged).
    pub(crate) async fn set_info(
        &self,
        key: RoomKey,
        oinfo: Option<String>,
        pinfo: Option<String>,
        now_ms: i64,
    ) -> Result<(), RtmError> {
        self.state().touch(key, now_ms);
        if let Some(remote) = self.remote() {
            return Box::pin(remote.set_info(key, oinfo, pinfo)).await;
        }
        self.commit().apply(Mutation::SetRoomInfo { pid: key.pid, rid: key.rid, oinfo, pinfo });
        Ok(())
    }
}
