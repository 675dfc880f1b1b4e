//! Typed payloads of the client gate: what the RTM client SDKs (Unity/C#,
//! Android, iOS, Web) send after connecting, and what the gate pushes to
//! them. See `rtm-client-wire.md` for the contract.
//!
//! Quests on a client connection are not signed: the first one is
//! [`Auth`] with a token the project's backend got from the server API
//! (`gettoken`), and the session is that user from then on. Where a client
//! method has the same shape as the server-API method of the same name
//! (`getroommembers`, `getroomcount`, `setroominfo`, `getroominfo`) the
//! same type serves both and is re-exported here.

mod auth;
mod history;
mod message;
mod pushes;
mod rooms;

pub use auth::{Auth, AuthAnswer, Bye};
pub use history::{GetRoomMsg, GetRoomMsgCount, GetUserRoomsAndLastMsg, RoomsLastMessage};
pub use message::{ChatBody, MessageBody, SendRoomMsg, SentMessage, CHAT_MTYPE};
pub use pushes::{Kickout, KickoutRoom, PushRoomMsg, ServerPing};
pub use rooms::{
    EnterRoom, EnterRooms, GetRoomOpenInfo, GetRoomsOpenInfo, GetServerTime, GetUserRooms, LeaveRoom, RoomOpenInfo,
    RoomsOpenInfo, ServerTime, UserRooms,
};

pub use crate::methods::{
    DelMsg, GetMsg, GetRoomCount, GetRoomInfo, GetRoomMembers, HistoryPage, HistoryRow, MessageCount, MessageInfo,
    SetRoomInfo,
};
