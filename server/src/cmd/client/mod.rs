//! The client gate's methods: one file per method, as for the server API.
//! The user is implicit: the session's logged-in user. `auth` and `bye`
//! belong to the gate itself (`gate/client.rs`).

mod del_msg;
mod enter_room;
mod enter_rooms;
mod get_msg;
mod get_room_count;
mod get_room_info;
mod get_room_members;
mod get_room_msg;
mod get_room_msg_count;
mod get_room_open_info;
mod get_rooms_open_info;
mod get_server_time;
mod get_user_rooms;
mod get_user_rooms_and_last_msg;
mod leave_room;
mod send_room_msg;
mod set_room_info;

use rtm_protocol::client;
use rtm_protocol::methods::Method;
use rtm_protocol::{params, Value};

use super::Reply;
use crate::config::Limits;
use crate::engine::Engine;
use crate::error::RtmError;
use crate::model::{RoomKey, UserKey};

/// What a client method may use.
pub(crate) struct ClientContext<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) limits: &'a Limits,
    /// The logged-in user.
    pub(crate) user: UserKey,
    /// The session the quest came on.
    pub(crate) session: u64,
    /// Wall-clock time of the quest, Unix milliseconds.
    pub(crate) now_ms: i64,
}

impl ClientContext<'_> {
    /// Room `rid` of the user's project.
    pub(crate) fn room(&self, rid: i64) -> RoomKey {
        RoomKey { pid: self.user.pid, rid }
    }
}

/// Executes one client method.
pub(crate) trait ClientHandler: Method {
    fn apply(self, ctx: &ClientContext<'_>)
        -> impl std::future::Future<Output = Result<Self::Answer, RtmError>> + Send;
}

macro_rules! client_commands {
    ($($variant:ident),* $(,)?) => {
        /// Every method a logged-in client may call.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum ClientCommand {
            $($variant,)*
        }

        impl ClientCommand {
            /// Every command, in declaration order (`command as usize` indexes it).
            pub(crate) const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The command for a method name.
            pub(crate) fn from_name(name: &[u8]) -> Option<Self> {
                $(if name == client::$variant::NAME.as_bytes() {
                    return Some(Self::$variant);
                })*
                None
            }

            /// The FPNN method name.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => client::$variant::NAME,)*
                }
            }

            /// Reads the parameters, runs the handler, and hands the answer to `reply`.
            pub(crate) async fn execute<R: Reply>(self, ctx: &ClientContext<'_>, params: &Value<'_>, reply: R) -> Result<R::Done, RtmError> {
                match self {
                    $(Self::$variant => {
                        let request: client::$variant = params::from_value(params)?;
                        Ok(reply.ok(&request.apply(ctx).await?))
                    })*
                }
            }
        }
    };
}

client_commands! {
    EnterRoom,
    EnterRooms,
    LeaveRoom,
    GetUserRooms,
    GetRoomMembers,
    GetRoomCount,
    SetRoomInfo,
    GetRoomInfo,
    GetRoomOpenInfo,
    GetRoomsOpenInfo,
    GetServerTime,
    SendRoomMsg,
    GetRoomMsg,
    GetRoomMsgCount,
    GetUserRoomsAndLastMsg,
    GetMsg,
    DelMsg,
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::cmd::test_support::JsonReply;
    use crate::config::Config;

    /// Runs `command` with JSON parameters as user `uid` of project 1.
    pub(crate) fn run_as(
        engine: &Engine,
        uid: i64,
        command: ClientCommand,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, RtmError> {
        let limits = Config::default().limits;
        let ctx = ClientContext {
            engine,
            limits: &limits,
            user: UserKey { pid: 1, uid },
            session: 0,
            now_ms: crate::clock::now_ms(),
        };
        let bytes = serde_json::to_vec(&params).unwrap();
        crate::cmd::test_support::ready(command.execute(&ctx, &Value::from_json(&bytes).unwrap(), JsonReply))
    }
}
