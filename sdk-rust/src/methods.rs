//! The typed server methods, defined once and generated for the async
//! client (async and callback forms) and the blocking client (blocking and
//! callback forms).

use std::collections::HashMap;
use std::time::Duration;

use rtm_protocol::client::MessageBody;
use rtm_protocol::methods::{
    AcquireRecording, DelMsg, GetMsg, GetRoomMsgCount, GetToken, QueryRecording, StopPlayback, StopRecording,
    UpdateRecording, ROOM_MESSAGE_TYPE,
};
use rtm_protocol::methods::{
    AddProjectBlack, AddRoomBan, AddRoomMember, AddRoomMembers, AddUserRooms, DelRoomMember, DelRoomMembers,
    DeleteRoom, DeleteUserRooms, ExtendRoom, GetRoom, GetRoomCount, GetRoomInfo, GetRoomMembers, IsBanOfRoom,
    IsProjectBlack, KeepRoomAlive, Kickout, ListRoomMembers, ListRooms, Ping, RemoveProjectBlack, RemoveRoomBan,
    RemoveRoomMembers, RemoveToken, RoomExists, SendRoomMsg, SetMemberMode, SetRoomInfo, UpsertRoomMembers,
};
pub use rtm_protocol::methods::{
    CreateRoom, CreatedRoom, ExtendedRoom, MemberSpec, Mode, Role, RoomDetails, RoomInfo, RoomMember, RoomMemberPage,
    RoomPage, UpdateRoom,
};
pub use rtm_protocol::methods::{RecordingFile, RecordingStatus, RecordingStopped, StartPlayback, StartRecording};

use crate::client::RtmServerClient;
use crate::error::Error;
use crate::history::{HistoryPage, HistoryQuery, MessageInfo};
use crate::listen::{ListenChange, ListenFilter, ListenState};

/// `btime` on the wire: whole seconds (rounded up), ≤ 0 for permanent.
fn btime(duration: Option<Duration>) -> i64 {
    match duration {
        None => 0,
        Some(d) => {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            i64::try_from(secs).unwrap_or(i64::MAX).max(1)
        }
    }
}

/// Each entry builds its request (`request`, a `Result`), sends it with
/// `via` (by default [`RtmServerClient::execute`]; a method taking the
/// client and `&request`) and maps the answer (`answer`).
macro_rules! server_methods {
    (@via) => { RtmServerClient::execute };
    (@via $via:path) => { $via };
    ($(
        $(#[$doc:meta])*
        fn $name:ident / $callback:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty {
            request: $request:expr,
            $(via: $via:path,)?
            answer: |$answer:pat_param| $map:expr $(,)?
        }
    )*) => {
        impl RtmServerClient {
            $(
                $(#[$doc])*
                pub async fn $name(&self, $($arg: $ty),*) -> Result<$ret, Error> {
                    let request = $request?;
                    let $answer = server_methods!(@via $($via)?)(self, &request).await?;
                    Ok($map)
                }

                #[doc = concat!(
                    "Callback form of [`", stringify!($name), "`](Self::", stringify!($name), "): returns at once ",
                    "and runs `callback` on the client's runtime when the answer arrives, the call times out, or ",
                    "the connection drops. The callback must not block."
                )]
                pub fn $callback(&self, $($arg: $ty,)* callback: impl FnOnce(Result<$ret, Error>) + Send + 'static) {
                    let request = $request;
                    let client = self.clone();
                    self.spawn_callback(
                        async move {
                            let $answer = server_methods!(@via $($via)?)(&client, &request?).await?;
                            Ok($map)
                        },
                        callback,
                    );
                }
            )*
        }

        impl crate::blocking::RtmServerClient {
            $(
                $(#[$doc])*
                ///
                /// Blocks the calling thread until the answer arrives or the call
                /// times out. Calling it from inside an async runtime is an
                /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) error.
                pub fn $name(&self, $($arg: $ty),*) -> Result<$ret, Error> {
                    let request = $request?;
                    self.block_on(|client| async move {
                        let $answer = server_methods!(@via $($via)?)(&client, &request).await?;
                        Ok($map)
                    })
                }

                #[doc = concat!(
                    "Callback form of [`", stringify!($name), "`](Self::", stringify!($name), "): returns at once ",
                    "and runs `callback` on the client's background thread when the answer arrives, the call ",
                    "times out, or the connection drops. The callback must not block."
                )]
                pub fn $callback(&self, $($arg: $ty,)* callback: impl FnOnce(Result<$ret, Error>) + Send + 'static) {
                    self.async_client().$callback($($arg,)* callback)
                }
            )*
        }
    };
}

server_methods! {
    /// Adds `uid` to room `rid`, creating the room if needed (`addroommember`).
    fn add_room_member / add_room_member_with_callback(rid: i64, uid: i64) -> () {
        request: Ok::<_, Error>(AddRoomMember { rid, uid }),
        answer: |_| (),
    }

    /// Removes `uid` from room `rid`; removing a non-member is not an error (`delroommember`).
    fn del_room_member / del_room_member_with_callback(rid: i64, uid: i64) -> () {
        request: Ok::<_, Error>(DelRoomMember { rid, uid }),
        answer: |_| (),
    }

    /// Adds several members to room `rid` (`addroommembers`, at most 100 by
    /// default). Returns the uids that are members afterwards.
    fn add_room_members / add_room_members_with_callback(rid: i64, uids: &[i64]) -> Vec<i64> {
        request: Ok::<_, Error>(AddRoomMembers { rid, uids: uids.to_vec() }),
        answer: |a| a.successed_uids,
    }

    /// Removes several members from room `rid` (`delroommembers`). Returns the
    /// uids that are not members afterwards.
    fn del_room_members / del_room_members_with_callback(rid: i64, uids: &[i64]) -> Vec<i64> {
        request: Ok::<_, Error>(DelRoomMembers { rid, uids: uids.to_vec() }),
        answer: |a| a.successed_uids,
    }

    /// Adds `uid` to every room in `rids` (`adduserrooms`).
    fn add_user_rooms / add_user_rooms_with_callback(uid: i64, rids: &[i64]) -> () {
        request: Ok::<_, Error>(AddUserRooms { rids: rids.to_vec(), uid }),
        answer: |_| (),
    }

    /// Removes `uid` from every room in `rids` (`deleteuserrooms`).
    fn delete_user_rooms / delete_user_rooms_with_callback(uid: i64, rids: &[i64]) -> () {
        request: Ok::<_, Error>(DeleteUserRooms { rids: rids.to_vec(), uid }),
        answer: |_| (),
    }

    /// Sets a room's public and/or private info (`setroominfo`); `None` leaves
    /// that part unchanged, and at least one must be given.
    fn set_room_info / set_room_info_with_callback(rid: i64, oinfo: Option<&str>, pinfo: Option<&str>) -> () {
        request: if oinfo.is_none() && pinfo.is_none() {
            Err(Error::invalid("set_room_info needs oinfo, pinfo or both"))
        } else {
            Ok(SetRoomInfo { rid, oinfo: oinfo.map(str::to_owned), pinfo: pinfo.map(str::to_owned) })
        },
        answer: |_| (),
    }

    /// A room's public and private info, `""` when unset (`getroominfo`).
    fn get_room_info / get_room_info_with_callback(rid: i64) -> RoomInfo {
        request: Ok::<_, Error>(GetRoomInfo { rid }),
        answer: |info| info,
    }

    /// The members of room `rid`, ascending (`getroommembers`).
    fn get_room_members / get_room_members_with_callback(rid: i64) -> Vec<i64> {
        request: Ok::<_, Error>(GetRoomMembers { rid }),
        answer: |a| a.uids,
    }

    /// Member counts of many rooms at once (`getroomcount`); unknown rooms count 0.
    fn get_room_count / get_room_count_with_callback(rids: &[i64]) -> HashMap<i64, i32> {
        request: Ok::<_, Error>(GetRoomCount::new(rids.to_vec())),
        answer: |a| a.to_map(),
    }

    /// Mutes `uid` in room `rid`, or in every room of the project when `rid`
    /// is `None`, for `duration` (`None` = permanently) (`addroomban`).
    fn add_room_ban / add_room_ban_with_callback(rid: Option<i64>, uid: i64, duration: Option<Duration>) -> () {
        request: Ok::<_, Error>(AddRoomBan { rid, uid, btime: btime(duration) }),
        answer: |_| (),
    }

    /// Lifts a ban in room `rid`, or the all-rooms ban when `rid` is `None` (`removeroomban`).
    fn remove_room_ban / remove_room_ban_with_callback(rid: Option<i64>, uid: i64) -> () {
        request: Ok::<_, Error>(RemoveRoomBan { rid, uid }),
        answer: |_| (),
    }

    /// Whether `uid` is banned in room `rid`, by a room or an all-rooms ban (`isbanofroom`).
    fn is_ban_of_room / is_ban_of_room_with_callback(rid: i64, uid: i64) -> bool {
        request: Ok::<_, Error>(IsBanOfRoom { rid, uid }),
        answer: |a| a.ok,
    }

    /// Puts `uid` on the project block list for `duration` (`None` = permanently) (`addprojectblack`).
    fn add_project_black / add_project_black_with_callback(uid: i64, duration: Option<Duration>) -> () {
        request: Ok::<_, Error>(AddProjectBlack { uid, btime: btime(duration) }),
        answer: |_| (),
    }

    /// Takes `uid` off the project block list (`removeprojectblack`).
    fn remove_project_black / remove_project_black_with_callback(uid: i64) -> () {
        request: Ok::<_, Error>(RemoveProjectBlack { uid }),
        answer: |_| (),
    }

    /// Whether `uid` is on the project block list (`isprojectblack`).
    fn is_project_black / is_project_black_with_callback(uid: i64) -> bool {
        request: Ok::<_, Error>(IsProjectBlack { uid }),
        answer: |a| a.ok,
    }

    /// A login token for end user `uid`, to hand to the user's client
    /// (`gettoken`): valid for every login and relogin until it expires or
    /// [`remove_token`](Self::remove_token).
    fn get_token / get_token_with_callback(uid: i64) -> String {
        request: Ok::<_, Error>(GetToken { uid, version: None }),
        answer: |a| a.token,
    }

    /// Every token issued to `uid` so far stops logging in (`removetoken`).
    fn remove_token / remove_token_with_callback(uid: i64) -> () {
        request: Ok::<_, Error>(RemoveToken { uid }),
        answer: |_| (),
    }

    /// Every session of `uid` gets `kickout` and is closed (`kickout`).
    fn kickout / kickout_with_callback(uid: i64) -> () {
        request: Ok::<_, Error>(Kickout { uid, ce: None }),
        answer: |_| (),
    }

    /// Says `msg` in room `rid` as user `from` (any uid; it need not be a
    /// member) with message type `mtype` (`sendroommsg`); returns the
    /// server's `mtime`. The message id is unique per process.
    fn send_room_message / send_room_message_with_callback(
        from: i64,
        rid: i64,
        mtype: i64,
        msg: MessageBody,
        attrs: &str
    ) -> i64 {
        request: Ok::<_, Error>(SendRoomMsg { mtype, from, rid, mid: crate::quest::unique_id(), msg, attrs: attrs.into() }),
        answer: |a| a.mtime,
    }

    /// One page of room `rid`'s history as user `uid` sees it (`getroommsg`).
    /// Pass the page's `lastid` (and `begin`/`end`) back in `query` for the
    /// next one, or let [`room_history`](Self::room_history) do it.
    fn get_room_messages / get_room_messages_with_callback(uid: i64, rid: i64, query: &HistoryQuery) -> HistoryPage {
        request: Ok::<_, Error>(query.server_request(uid, rid)),
        answer: |page| page,
    }

    /// The message `from` sent in room `rid` as `mid`, from history
    /// (`getmsg`); 200070 if history does not have it.
    fn get_room_message / get_room_message_with_callback(rid: i64, from: i64, mid: i64) -> MessageInfo {
        request: Ok::<_, Error>(GetMsg { mid, from, xid: rid, kind: ROOM_MESSAGE_TYPE }),
        answer: |info| info,
    }

    /// Deletes the message `from` sent in room `rid` as `mid` from history
    /// (`delmsg`); deleting one that is not there is not an error.
    fn delete_room_message / delete_room_message_with_callback(rid: i64, from: i64, mid: i64) -> () {
        request: Ok::<_, Error>(DelMsg { mid, from, xid: rid, kind: ROOM_MESSAGE_TYPE }),
        answer: |_| (),
    }

    /// How many of room `rid`'s messages (of `mtypes`, if any) history holds
    /// between `begin` and `end` (Unix ms, inclusive; 0 = unbounded)
    /// (`getroommsgcount`).
    fn get_room_message_count / get_room_message_count_with_callback(
        rid: i64,
        begin: i64,
        end: i64,
        mtypes: Option<&[i64]>
    ) -> i64 {
        request: Ok::<_, Error>(GetRoomMsgCount { uid: None, rid, begin, end, mtypes: mtypes.map(<[i64]>::to_vec) }),
        answer: |a| a.count,
    }

    /// Creates a scheduled room with a validity window and release policies
    /// (`createroom`); returns its id and effective window. `members` adds
    /// members with their roles at once (the window must be open).
    fn create_room / create_room_with_callback(room: &CreateRoom) -> CreatedRoom {
        request: Ok::<_, Error>(room.clone()),
        answer: |created| created,
    }

    /// Every attribute of a room, scheduled or not (`getroom`).
    fn get_room / get_room_with_callback(rid: i64) -> RoomDetails {
        request: Ok::<_, Error>(GetRoom { rid }),
        answer: |details| details,
    }

    /// Releases a room: its members, info and policies (`deleteroom`).
    fn delete_room / delete_room_with_callback(rid: i64) -> () {
        request: Ok::<_, Error>(DeleteRoom { rid }),
        answer: |_| (),
    }

    /// Whether a room exists (`roomexists`).
    fn room_exists / room_exists_with_callback(rid: i64) -> bool {
        request: Ok::<_, Error>(RoomExists { rid }),
        answer: |a| a.ok,
    }

    /// Resets a scheduled room's idle clock (`keeproomalive`).
    fn keep_room_alive / keep_room_alive_with_callback(rid: i64) -> () {
        request: Ok::<_, Error>(KeepRoomAlive { rid }),
        answer: |_| (),
    }

    /// Pushes a scheduled room's end out by `minutes` (`None` = 15), and/or
    /// turns automatic extension on or off (`extendroom`). `auto` alone
    /// leaves the end where it is.
    fn extend_room / extend_room_with_callback(rid: i64, minutes: Option<i64>, auto: Option<bool>) -> ExtendedRoom {
        request: Ok::<_, Error>(ExtendRoom { rid, auto, minutes }),
        answer: |extended| extended,
    }

    /// Changes a scheduled room's window and policies; `None` fields stay as
    /// they are (`updateroom`). Returns the room as it is afterwards.
    fn update_room / update_room_with_callback(update: &UpdateRoom) -> RoomDetails {
        request: Ok::<_, Error>(*update),
        answer: |details| details,
    }

    /// One page of the project's scheduled rooms, ascending by rid, after
    /// rid `cursor` (`None` = from the start); `limit` rooms per page
    /// (`None` = 100, at most 1000) (`listrooms`). While `more` is true,
    /// pass `next_cursor` as the next `cursor`.
    fn list_rooms / list_rooms_with_callback(cursor: Option<i64>, limit: Option<i64>) -> RoomPage {
        request: Ok::<_, Error>(ListRooms { cursor, limit }),
        answer: |page| page,
    }

    /// Adds members to room `rid` with their roles, or changes the role of
    /// those already in it; a new member, or one whose role changes, gets
    /// the role's default mode (`upsertroommembers`).
    fn upsert_room_members / upsert_room_members_with_callback(rid: i64, members: &[MemberSpec]) -> () {
        request: Ok::<_, Error>(UpsertRoomMembers { rid, members: members.to_vec() }),
        answer: |_| (),
    }

    /// Removes members from room `rid`, with their roles (`removeroommembers`).
    fn remove_room_members / remove_room_members_with_callback(rid: i64, uids: &[i64]) -> () {
        request: Ok::<_, Error>(RemoveRoomMembers { rid, uids: uids.to_vec() }),
        answer: |_| (),
    }

    /// One page of room `rid`'s members with their roles, modes and join
    /// times, ascending by uid, after uid `cursor` (`None` = from the
    /// start); `limit` per page (`None` = 100, at most 1000)
    /// (`listroommembers`). While `more` is true, pass `next_cursor` as the
    /// next `cursor`.
    fn list_room_members / list_room_members_with_callback(
        rid: i64,
        cursor: Option<i64>,
        limit: Option<i64>
    ) -> RoomMemberPage {
        request: Ok::<_, Error>(ListRoomMembers { rid, cursor, limit }),
        answer: |page| page,
    }

    /// Sets the send/receive mode of member `uid` of room `rid` (`setmembermode`).
    fn set_member_mode / set_member_mode_with_callback(rid: i64, uid: i64, mode: Mode) -> () {
        request: Ok::<_, Error>(SetMemberMode { rid, uid, mode }),
        answer: |_| (),
    }

    /// Listens to more room events: those of the rooms, users and event
    /// names in `filter`, on top of what the client listens to already
    /// (`addlisten`). The events arrive at
    /// [`ClientOptions::on_room_event`](crate::ClientOptions::on_room_event)
    /// and [`room_events`](RtmServerClient::room_events) streams. Once the
    /// server accepts the call, the client remembers it and listens again
    /// after a reconnect. An empty filter is refused locally.
    fn add_listen / add_listen_with_callback(filter: &ListenFilter) -> () {
        request: if filter.is_empty() {
            Err(Error::invalid("add_listen needs rooms, users or event names"))
        } else {
            Ok(ListenChange::Add(filter.clone()))
        },
        via: RtmServerClient::listen,
        answer: |_| (),
    }

    /// Stops listening to the rooms, users and event names in `filter`
    /// (`removelisten`); remembered like [`add_listen`](RtmServerClient::add_listen).
    /// An empty filter is refused locally.
    fn remove_listen / remove_listen_with_callback(filter: &ListenFilter) -> () {
        request: if filter.is_empty() {
            Err(Error::invalid("remove_listen needs rooms, users or event names"))
        } else {
            Ok(ListenChange::Remove(filter.clone()))
        },
        via: RtmServerClient::listen,
        answer: |_| (),
    }

    /// Replaces what the client listens to with `filter`, plus every room
    /// if `all_rooms` and every event name if `all_events` (`setlisten`);
    /// remembered like [`add_listen`](RtmServerClient::add_listen). An
    /// empty filter with both flags false stops all listening.
    fn set_listen / set_listen_with_callback(filter: &ListenFilter, all_rooms: bool, all_events: bool) -> () {
        request: Ok::<_, Error>(ListenChange::Set(ListenState::from_filter(filter, all_rooms, all_events))),
        via: RtmServerClient::listen,
        answer: |_| (),
    }

    /// Reserves a recording of room `rid` (`acquirerecording`); the resource
    /// id must start a recording within 5 minutes.
    fn acquire_recording / acquire_recording_with_callback(rid: i64) -> String {
        request: Ok::<_, Error>(AcquireRecording { rid }),
        answer: |a| a.resource_id,
    }

    /// Starts recording a room's messages to files (`startrecording`, with
    /// the resource id from [`acquire_recording`](Self::acquire_recording));
    /// returns the recording's `sid`.
    fn start_recording / start_recording_with_callback(request: &StartRecording) -> String {
        request: Ok::<_, Error>(request.clone()),
        answer: |a| a.sid,
    }

    /// Changes whom a running recording records (`updaterecording`): a list
    /// given replaces the old one (`uids` empty: everyone).
    fn update_recording / update_recording_with_callback(sid: &str, uids: Option<&[i64]>, exclude_uids: Option<&[i64]>) -> () {
        request: Ok::<_, Error>(UpdateRecording {
            sid: sid.to_owned(),
            uids: uids.map(<[i64]>::to_vec),
            exclude_uids: exclude_uids.map(<[i64]>::to_vec),
        }),
        answer: |_| (),
    }

    /// A recording's status and file sets (`queryrecording`).
    fn query_recording / query_recording_with_callback(sid: &str) -> RecordingStatus {
        request: Ok::<_, Error>(QueryRecording { sid: sid.to_owned() }),
        answer: |a| a,
    }

    /// Ends a recording once what history holds is in its files
    /// (`stoprecording`); returns the complete file sets.
    fn stop_recording / stop_recording_with_callback(sid: &str) -> RecordingStopped {
        request: Ok::<_, Error>(StopRecording { sid: sid.to_owned() }),
        answer: |a| a,
    }

    /// Plays recorded manifests or prepared JSON Lines files (paths relative
    /// to the server's recordings directory) into a room as room messages
    /// (`startplayback`).
    fn start_playback / start_playback_with_callback(request: &StartPlayback) -> () {
        request: Ok::<_, Error>(request.clone()),
        answer: |_| (),
    }

    /// Stops a room's playback (`stopplayback`).
    fn stop_playback / stop_playback_with_callback(rid: i64) -> () {
        request: Ok::<_, Error>(StopPlayback { rid }),
        answer: |_| (),
    }

    /// The server's clock in Unix milliseconds (`*ping`, unsigned).
    fn ping / ping_with_callback() -> i64 {
        request: Ok::<_, Error>(Ping {}),
        answer: |a| a.ts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_durations_round_up_to_whole_seconds() {
        assert_eq!(btime(None), 0);
        assert_eq!(btime(Some(Duration::from_secs(60))), 60);
        assert_eq!(btime(Some(Duration::from_millis(1500))), 2);
        assert_eq!(btime(Some(Duration::ZERO)), 1);
    }
}
