//! Users as the client gate sees them: entering and leaving rooms, and
//! login-token revocation.

use rtm_protocol::ErrorCode;

use super::Engine;
use crate::error::RtmError;
use crate::model::{Mutation, RoomKey, UserKey};

impl Engine {
    /// `user` enters room `rid` as a client: the admission rules of
    /// [`admit`](Self::admit) (window, scheduled-room roles), plus a limit on
    /// the rooms a user may be in (200047). Entering a room the user is
    /// already in succeeds and changes nothing.
    pub(crate) async fn enter_room(
        &self,
        user: UserKey,
        rid: i64,
        max_rooms: usize,
        now_ms: i64,
    ) -> Result<(), RtmError> {
        let key = RoomKey { pid: user.pid, rid };
        if self.state().is_member(key, user.uid) {
            return Ok(());
        }
        let rooms = self.state().user_room_count(user);
        if rooms >= max_rooms {
            return Err(RtmError::new(
                ErrorCode::MaxRoomCount,
                format!("user {} is in {rooms} rooms, the most allowed (limits.max_rooms_per_user)", user.uid),
            ));
        }
        if let Some(remote) = self.remote() {
            // The room count is this node's view: concurrent enters on two nodes may pass it by one each.
            return Box::pin(remote.admit(key, &[user.uid])).await;
        }
        let _room = self.lock(key);
        if self.state().is_member(key, user.uid) {
            return Ok(());
        }
        let scheduled = self.check_window(key, now_ms)?;
        self.commit().apply_by(Mutation::AddMembers { pid: key.pid, rid, uids: vec![user.uid], at_ms: now_ms }, user);
        if scheduled {
            self.after_join(key, now_ms);
        }
        Ok(())
    }

    /// `user` leaves room `rid` as a client (no `kickoutroom` to the user;
    /// the threshold rule of [`remove`](Self::remove) applies).
    pub(crate) async fn leave_room(&self, user: UserKey, rid: i64, now_ms: i64) -> Result<(), RtmError> {
        if let Some(remote) = self.remote() {
            return Box::pin(remote.leave(user, rid)).await;
        }
        self.remove_by(RoomKey { pid: user.pid, rid }, vec![user.uid], now_ms, Some(user));
        Ok(())
    }

    /// The rooms `user` is a member of, ascending.
    pub(crate) fn user_rooms(&self, user: UserKey) -> Vec<i64> {
        self.state().user_rooms(user)
    }

    /// Every login token of `user` issued until now stops working.
    pub(crate) async fn revoke_tokens(&self, user: UserKey, now_ms: i64) -> Result<(), RtmError> {
        if let Some(remote) = self.remote() {
            return Box::pin(remote.revoke_tokens(user)).await;
        }
        self.commit().apply(Mutation::RevokeTokens { pid: user.pid, uid: user.uid, at_ms: now_ms });
        Ok(())
    }

    /// Closes every session of `user`, on every node (`kickout`, the block list).
    pub(crate) async fn kick(&self, user: UserKey) -> Result<(), RtmError> {
        match self.remote() {
            Some(remote) => Box::pin(remote.kick(user, None, true)).await,
            None => {
                self.presence().kick(user);
                Ok(())
            }
        }
    }

    /// After `session` of `user` logged in here, in redis mode: other
    /// nodes end their relogin grace for the user (the user is back and
    /// keeps the rooms), and under the single-login policy close the user's
    /// sessions (this node's were closed by the login itself).
    pub(crate) async fn logged_in(&self, user: UserKey, session: u64) -> Result<(), RtmError> {
        match self.remote() {
            Some(remote) => {
                let close = self.presence().single_login();
                Box::pin(remote.kick(user, Some(session), close)).await
            }
            None => Ok(()),
        }
    }

    /// When `user`'s tokens were last revoked, if ever.
    pub(crate) fn tokens_revoked_at(&self, user: UserKey) -> Option<i64> {
        self.state().tokens_revoked_at(user)
    }
}
