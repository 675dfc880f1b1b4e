//! The server-API methods: one file per method, dispatched by name.
//!
//! Each method's request type (from `rtm_protocol::methods`) implements
//! [`Handler`]; [`Command`] maps a method name to its handler and runs it,
//! writing the typed answer straight into the connection's output buffer.
//! A handler checks its parameters, makes one engine call and shapes the
//! answer; the room rules live in `engine`.

mod acquire_recording;
mod add_listen;
mod add_project_black;
mod add_room_ban;
mod add_room_member;
mod add_room_members;
mod add_user_rooms;
pub(crate) mod client;
pub(crate) mod convert;
mod create_room;
mod del_msg;
mod del_room_member;
mod del_room_members;
mod delete_room;
mod delete_user_rooms;
mod extend_room;
mod get_msg;
mod get_msg_num;
mod get_room;
mod get_room_count;
mod get_room_info;
mod get_room_members;
mod get_room_msg;
mod get_room_msg_count;
mod get_token;
mod is_ban_of_room;
mod is_project_black;
mod keep_room_alive;
mod kickout;
mod list_room_members;
mod list_rooms;
mod ping;
mod query_recording;
mod remove_listen;
mod remove_project_black;
mod remove_room_ban;
mod remove_room_members;
mod remove_token;
mod room_exists;
mod send_room_msg;
mod set_listen;
mod set_member_mode;
pub(crate) mod set_room_info;
mod start_playback;
mod start_recording;
mod stop_playback;
mod stop_recording;
mod update_recording;
mod update_room;
mod upsert_room_members;

use rtm_protocol::methods::{self, Method};
use rtm_protocol::{params, Encoding, ErrorCode, Value};

use crate::auth::Tokens;
use crate::config::Limits;
use crate::engine::Engine;
use crate::error::RtmError;
use crate::events::Filter;
use crate::model::{EventName, RoomKey};
use crate::recording::Recordings;
use crate::session::Session;

/// Default and largest page of `listrooms` and `listroommembers`.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Most rooms or users one listen call may name.
const MAX_LISTEN_ITEMS: usize = 10_000;

/// What a handler may use.
pub(crate) struct CmdContext<'a> {
    pub(crate) engine: &'a Engine,
    /// Login tokens for the client gate.
    pub(crate) tokens: &'a Tokens,
    /// Room recordings.
    pub(crate) recordings: &'a Recordings,
    pub(crate) limits: &'a Limits,
    /// The authenticated project.
    pub(crate) pid: i64,
    /// Wall-clock time of the quest, Unix milliseconds.
    pub(crate) now_ms: i64,
    /// The caller's session (`None` outside a connection, in tests).
    pub(crate) session: Option<&'a Session>,
    /// The encoding of the quest (pushes to a listener use it).
    pub(crate) encoding: Encoding,
}

impl CmdContext<'_> {
    /// Room `rid` of the authenticated project.
    pub(crate) fn room(&self, rid: i64) -> RoomKey {
        RoomKey { pid: self.pid, rid }
    }

    /// Records an operation on room `rid` (resets a scheduled room's idle clock).
    pub(crate) fn touch(&self, rid: i64) {
        self.engine.touch(self.room(rid), self.now_ms);
    }
}

/// Executes one method.
pub(crate) trait Handler: Method {
    fn apply(self, ctx: &CmdContext<'_>) -> impl std::future::Future<Output = Result<Self::Answer, RtmError>> + Send;
}

macro_rules! commands {
    ($($variant:ident),* $(,)?) => {
        /// Every method this server answers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Command {
            $($variant,)*
        }

        impl Command {
            /// Every command, in declaration order (`command as usize` indexes it).
            pub(crate) const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The command for a method name.
            pub(crate) fn from_name(name: &[u8]) -> Option<Self> {
                $(if name == methods::$variant::NAME.as_bytes() {
                    return Some(Self::$variant);
                })*
                None
            }

            /// The FPNN method name.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => methods::$variant::NAME,)*
                }
            }

            /// Reads the parameters, runs the handler, and hands the answer
            /// to `reply`.
            pub(crate) async fn execute<R: Reply>(self, ctx: &CmdContext<'_>, params: &Value<'_>, reply: R) -> Result<R::Done, RtmError> {
                match self {
                    $(Self::$variant => {
                        let request: methods::$variant = params::from_value(params)?;
                        Ok(reply.ok(&request.apply(ctx).await?))
                    })*
                }
            }
        }
    };
}

commands! {
    AddRoomMember,
    DelRoomMember,
    AddRoomMembers,
    DelRoomMembers,
    AddUserRooms,
    DeleteUserRooms,
    SetRoomInfo,
    GetRoomInfo,
    GetRoomMembers,
    GetRoomCount,
    AddRoomBan,
    RemoveRoomBan,
    IsBanOfRoom,
    AddProjectBlack,
    RemoveProjectBlack,
    IsProjectBlack,
    CreateRoom,
    GetRoom,
    DeleteRoom,
    RoomExists,
    KeepRoomAlive,
    ExtendRoom,
    UpdateRoom,
    ListRooms,
    UpsertRoomMembers,
    RemoveRoomMembers,
    ListRoomMembers,
    SetMemberMode,
    AddListen,
    RemoveListen,
    SetListen,
    GetToken,
    RemoveToken,
    Kickout,
    SendRoomMsg,
    GetRoomMsg,
    GetRoomMsgCount,
    GetMsg,
    GetMsgNum,
    DelMsg,
    AcquireRecording,
    StartRecording,
    UpdateRecording,
    QueryRecording,
    StopRecording,
    StartPlayback,
    StopPlayback,
    Ping,
}

impl Command {
    /// Whether quests of this method carry `pid`/`sign`/`salt`/`ts`.
    pub(crate) fn needs_auth(self) -> bool {
        self != Self::Ping
    }
}

/// Where a successful answer goes.
pub(crate) trait Reply {
    type Done;
    fn ok<T: serde::Serialize>(self, answer: &T) -> Self::Done;
}

/// A page size: default 100, from 1 to 1000.
pub(crate) fn page_limit(limit: Option<i64>) -> Result<usize, RtmError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE as i64).contains(&n) => Ok(n as usize),
        Some(n) => {
            Err(RtmError::new(ErrorCode::InvalidParameter, format!("'limit' must be from 1 to {MAX_PAGE}, got {n}")))
        }
    }
}

/// Event names of a listen call; an unknown name is refused.
pub(crate) fn event_names(names: Option<&[String]>) -> Result<Vec<EventName>, RtmError> {
    names
        .unwrap_or_default()
        .iter()
        .map(|name| {
            EventName::from_name(name).ok_or_else(|| {
                RtmError::new(
                    ErrorCode::InvalidParameter,
                    format!("unknown event '{name}'; events are {}", EventName::list()),
                )
            })
        })
        .collect()
}

/// Changes what this session listens to, subscribing it if needed.
pub(crate) fn listen(ctx: &CmdContext<'_>, change: impl FnOnce(&mut Filter)) -> Result<(), RtmError> {
    let Some(session) = ctx.session else {
        return Err(RtmError::new(ErrorCode::CoreUnknownError, "listening needs a connection"));
    };
    let mut too_many = None;
    let hub = ctx.engine.events();
    // A refused change changes nothing, and a refused first one subscribes nothing.
    hub.listen(session.id, &session.outbox, ctx.pid, ctx.encoding, ctx.now_ms, |filter| {
        let mut next = filter.clone();
        change(&mut next);
        if next.rids.len() > MAX_LISTEN_ITEMS || next.uids.len() > MAX_LISTEN_ITEMS {
            too_many = Some((next.rids.len(), next.uids.len()));
            return false;
        }
        *filter = next;
        true
    });
    match too_many {
        None => Ok(()),
        Some((rids, uids)) => Err(RtmError::new(
            ErrorCode::TooManyItemsInParameters,
            format!(
                "a connection listens to at most {MAX_LISTEN_ITEMS} rooms and {MAX_LISTEN_ITEMS} users (this would \
                 make {rids} and {uids}); nothing was changed; 'setlisten' with 'room: true' listens to every room"
            ),
        )),
    }
}

/// Refuses a list parameter over `limits.max_list_len` items (200032).
pub(crate) fn bounded_list(key: &str, len: usize, limits: &Limits) -> Result<(), RtmError> {
    if len > limits.max_list_len {
        return Err(RtmError::new(
            ErrorCode::TooManyItemsInParameters,
            format!("parameter '{key}' has {len} items; at most {} are allowed", limits.max_list_len),
        ));
    }
    Ok(())
}

/// Checks a list parameter's length and drops duplicates, keeping order.
pub(crate) fn distinct_list(key: &str, list: &[i64], limits: &Limits) -> Result<Vec<i64>, RtmError> {
    if list.is_empty() {
        return Err(RtmError::new(ErrorCode::EmptyParameter, format!("parameter '{key}' must not be empty")));
    }
    bounded_list(key, list.len(), limits)?;
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    Ok(list.iter().copied().filter(|x| seen.insert(*x)).collect())
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::config::Config;

    /// A reply that just returns the answer as JSON, for handler tests.
    pub(crate) struct JsonReply;

    impl Reply for JsonReply {
        type Done = serde_json::Value;
        fn ok<T: serde::Serialize>(self, answer: &T) -> serde_json::Value {
            serde_json::to_value(answer).unwrap()
        }
    }

    /// Runs `command` with JSON parameters against `engine`, as project 1.
    pub(crate) fn run(
        engine: &Engine,
        command: Command,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, RtmError> {
        let config = Config::default();
        let limits = config.limits.clone();
        let tokens = Tokens::new(&config);
        let recordings = Recordings::disabled();
        let ctx = CmdContext {
            engine,
            tokens: &tokens,
            recordings: &recordings,
            limits: &limits,
            pid: 1,
            now_ms: crate::clock::now_ms(),
            session: None,
            encoding: Encoding::Json,
        };
        let bytes = serde_json::to_vec(&params).unwrap();
        let value = Value::from_json(&bytes).unwrap();
        ready(command.execute(&ctx, &value, JsonReply))
    }

    /// The result of a future that needs no waiting (the embedded engine's
    /// operations never wait); panics if it is pending.
    pub(crate) fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => panic!("an embedded engine operation waited"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every quest builds this future, even when it never waits (the
    /// embedded engine): the engine boxes its redis-mode calls so that
    /// their round-trip state does not size it (1,328 bytes unboxed).
    #[test]
    fn a_quest_future_stays_small() {
        let engine = Engine::default();
        let config = crate::config::Config::default();
        let (tokens, recordings) = (Tokens::new(&config), Recordings::disabled());
        let ctx = CmdContext {
            engine: &engine,
            tokens: &tokens,
            recordings: &recordings,
            limits: &config.limits,
            pid: 1,
            now_ms: 0,
            session: None,
            encoding: Encoding::Json,
        };
        let value = Value::from_json(b"{}").unwrap();
        let future = Command::GetRoomCount.execute(&ctx, &value, test_support::JsonReply);
        assert!(size_of_val(&future) <= 768, "{} bytes", size_of_val(&future));
    }

    #[test]
    fn names_round_trip() {
        for &command in Command::ALL {
            assert_eq!(Command::from_name(command.name().as_bytes()), Some(command));
        }
        assert_eq!(Command::from_name(b"nosuchmethod"), None);
        assert_eq!(Command::from_name(b"addroommember"), Some(Command::AddRoomMember));
    }

    #[test]
    fn lists_are_bounded_and_deduplicated() {
        let limits = crate::config::Config::default().limits;
        assert_eq!(distinct_list("uids", &[3, 1, 3], &limits).unwrap(), vec![3, 1]);
        assert_eq!(distinct_list("uids", &[], &limits).unwrap_err().code, ErrorCode::EmptyParameter);
        let long: Vec<i64> = (0..101).collect();
        assert_eq!(distinct_list("uids", &long, &limits).unwrap_err().code, ErrorCode::TooManyItemsInParameters);
    }
}
