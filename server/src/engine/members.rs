//! Membership operations: admit, remove, roles and modes.

use rtm_protocol::ErrorCode;

use super::Engine;
use crate::error::RtmError;
use crate::model::{MemberRole, Mode, Mutation, ReleaseReason, RoomKey, UserKey};

impl Engine {
    /// Adds members to a room (`addroommember(s)`, `adduserrooms`). A
    /// scheduled room refuses them (200021) outside its window, and begins
    /// when its second member joins.
    pub(crate) async fn admit(&self, key: RoomKey, uids: Vec<i64>, now_ms: i64) -> Result<(), RtmError> {
        if let Some(remote) = self.remote() {
            return Box::pin(remote.admit(key, &uids)).await;
        }
        let _room = self.lock(key);
        let scheduled = self.check_window(key, now_ms)?;
        self.commit().apply(Mutation::AddMembers { pid: key.pid, rid: key.rid, uids, at_ms: now_ms });
        // Implicit rooms neither begin nor idle: spare the hot path two lookups.
        if scheduled {
            self.after_join(key, now_ms);
        }
        Ok(())
    }

    /// Removes members from a room. A scheduled room that has begun and
    /// falls below its release threshold is released.
    pub(crate) async fn remove(&self, key: RoomKey, uids: Vec<i64>, now_ms: i64) -> Result<(), RtmError> {
        if let Some(remote) = self.remote() {
            return Box::pin(remote.remove(key, &uids)).await;
        }
        self.remove_by(key, uids, now_ms, None);
        Ok(())
    }

    /// [`remove`](Self::remove), made by `by` about themself when given.
    pub(super) fn remove_by(&self, key: RoomKey, uids: Vec<i64>, now_ms: i64, by: Option<UserKey>) {
        let _room = self.lock(key);
        let mutation = Mutation::RemoveMembers { pid: key.pid, rid: key.rid, uids };
        match by {
            Some(user) => self.commit().apply_by(mutation, user),
            None => self.commit().apply(mutation),
        };
        self.state().touch(key, now_ms);
        let below_threshold = self.state().schedule(key).is_some_and(|s| {
            s.begin_ms > 0 && s.release_threshold > 0 && self.state().member_count(key) < s.release_threshold as usize
        });
        if below_threshold {
            let reason = ReleaseReason::Threshold;
            self.commit().apply(Mutation::ReleaseRoom { pid: key.pid, rid: key.rid, reason });
        }
    }

    /// Adds members with roles, or changes the role of members already in
    /// the room (a new role resets the mode to the role's default).
    /// Newcomers obey the window, as with [`admit`](Self::admit).
    pub(crate) async fn upsert_members(
        &self,
        key: RoomKey,
        members: Vec<MemberRole>,
        now_ms: i64,
    ) -> Result<(), RtmError> {
        if let Some(remote) = self.remote() {
            return Box::pin(remote.upsert(key, &members)).await;
        }
        let _room = self.lock(key);
        self.upsert_members_locked(key, members, now_ms)
    }

    pub(super) fn upsert_members_locked(
        &self,
        key: RoomKey,
        members: Vec<MemberRole>,
        now_ms: i64,
    ) -> Result<(), RtmError> {
        if members.iter().any(|m| !self.state().is_member(key, m.uid)) {
            self.check_window(key, now_ms)?;
        }
        self.commit().apply(Mutation::UpsertMembers { pid: key.pid, rid: key.rid, members, at_ms: now_ms });
        self.after_join(key, now_ms);
        Ok(())
    }

    /// Sets a member's send/receive mode; refused (200040) if not a member.
    pub(crate) async fn set_member_mode(
        &self,
        key: RoomKey,
        uid: i64,
        mode: Mode,
        now_ms: i64,
    ) -> Result<(), RtmError> {
        if let Some(remote) = self.remote() {
            return Box::pin(remote.set_mode(key, uid, mode)).await;
        }
        let _room = self.lock(key);
        if !self.state().is_member(key, uid) {
            return Err(RtmError::new(ErrorCode::NotInRoom, format!("user {uid} is not a member of room {}", key.rid)));
        }
        self.commit().apply(Mutation::SetMemberMode { pid: key.pid, rid: key.rid, uid, mode });
        self.state().touch(key, now_ms);
        Ok(())
    }
}
