//! The end-user client's callback form (on [`RtmClient`]) and its blocking
//! form (on [`blocking::RtmClient`](crate::blocking::RtmClient)), generated
//! from its async methods as `methods.rs` does for the server client.
//!
//! Each entry names the async method, its callback form and arguments, and
//! how to call it from owned copies of the arguments (`run`: a closure from
//! a client handle to the call's future).

use crate::blocking;
use crate::end_user::RtmClient;
use crate::error::Error;
use crate::history::{HistoryPage, HistoryQuery, HistoryRow, MessageInfo};
use rtm_protocol::client::MessageBody;

macro_rules! end_user_methods {
    ($(
        $(#[$doc:meta])*
        fn $name:ident / $callback:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty {
            run: $run:expr $(,)?
        }
    )*) => {
        impl RtmClient {
            $(
                #[doc = concat!(
                    "Callback form of [`", stringify!($name), "`](Self::", stringify!($name), "): returns at once ",
                    "and runs `callback` on the client's runtime when the answer arrives, the call times out, or ",
                    "the connection drops. The callback must not block."
                )]
                pub fn $callback(&self, $($arg: $ty,)* callback: impl FnOnce(Result<$ret, Error>) + Send + 'static) {
                    let run = $run;
                    self.spawn_callback(run(self.clone()), callback);
                }
            )*
        }

        impl blocking::RtmClient {
            $(
                $(#[$doc])*
                ///
                /// Blocks the calling thread until the answer arrives or the call
                /// times out. Calling it from inside an async runtime is an
                /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) error.
                pub fn $name(&self, $($arg: $ty),*) -> Result<$ret, Error> {
                    let run = $run;
                    self.block_on(run)
                }

                #[doc = concat!(
                    "Callback form of [`", stringify!($name), "`](Self::", stringify!($name), "): returns at once ",
                    "and runs `callback` on the client's background thread. The callback must not block."
                )]
                pub fn $callback(&self, $($arg: $ty,)* callback: impl FnOnce(Result<$ret, Error>) + Send + 'static) {
                    self.async_client().$callback($($arg,)* callback)
                }
            )*
        }
    };
}

end_user_methods! {
    /// Enters room `rid` (entered again after every relogin).
    fn enter_room / enter_room_with_callback(rid: i64) -> () {
        run: move |c: RtmClient| async move { c.enter_room(rid).await },
    }

    /// Leaves room `rid`.
    fn leave_room / leave_room_with_callback(rid: i64) -> () {
        run: move |c: RtmClient| async move { c.leave_room(rid).await },
    }

    /// The rooms the user is in, as the server knows them.
    fn user_rooms / user_rooms_with_callback() -> Vec<i64> {
        run: move |c: RtmClient| async move { c.user_rooms().await },
    }

    /// The members of room `rid`.
    fn room_members / room_members_with_callback(rid: i64) -> Vec<i64> {
        run: move |c: RtmClient| async move { c.room_members(rid).await },
    }

    /// Says `msg` in room `rid` with message type `mtype`; returns the
    /// server's `mtime`. The message id is made here, unique per client.
    fn send_room_message / send_room_message_with_callback(rid: i64, mtype: i64, msg: MessageBody, attrs: &str) -> i64 {
        run: {
            let attrs = attrs.to_owned();
            move |c: RtmClient| async move { c.send_room_message(rid, mtype, msg, &attrs).await }
        },
    }

    /// `send_room_message` with the caller's own message id (a retry with
    /// the same id and content is not delivered twice).
    fn send_room_message_with_mid / send_room_message_with_mid_with_callback(
        rid: i64,
        mid: i64,
        mtype: i64,
        msg: MessageBody,
        attrs: &str
    ) -> i64 {
        run: {
            let attrs = attrs.to_owned();
            move |c: RtmClient| async move { c.send_room_message_with_mid(rid, mid, mtype, msg, &attrs).await }
        },
    }

    /// Chat text (mtype 30) in room `rid`.
    fn send_room_chat / send_room_chat_with_callback(rid: i64, text: &str) -> i64 {
        run: {
            let text = text.to_owned();
            move |c: RtmClient| async move { c.send_room_chat(rid, &text).await }
        },
    }

    /// One page of room `rid`'s history (`getroommsg`).
    fn get_room_messages / get_room_messages_with_callback(rid: i64, query: &HistoryQuery) -> HistoryPage {
        run: {
            let query = query.clone();
            move |c: RtmClient| async move { c.get_room_messages(rid, &query).await }
        },
    }

    /// The message `from` sent in room `rid` as `mid`, from history (`getmsg`).
    fn get_room_message / get_room_message_with_callback(rid: i64, from: i64, mid: i64) -> MessageInfo {
        run: move |c: RtmClient| async move { c.get_room_message(rid, from, mid).await },
    }

    /// Deletes one of the user's own messages from room `rid`'s history (`delmsg`).
    fn delete_room_message / delete_room_message_with_callback(rid: i64, mid: i64) -> () {
        run: move |c: RtmClient| async move { c.delete_room_message(rid, mid).await },
    }

    /// How many of room `rid`'s messages (of `mtypes`, if any) history holds
    /// between `begin` and `end` (Unix ms, inclusive; 0 = unbounded).
    fn get_room_message_count / get_room_message_count_with_callback(
        rid: i64,
        begin: i64,
        end: i64,
        mtypes: Option<&[i64]>
    ) -> i64 {
        run: {
            let mtypes = mtypes.map(<[i64]>::to_vec);
            move |c: RtmClient| async move { c.get_room_message_count(rid, begin, end, mtypes.as_deref()).await }
        },
    }

    /// Each of the user's rooms with its newest message (of `mtypes`, if any).
    fn rooms_with_last_message / rooms_with_last_message_with_callback(
        mtypes: Option<&[i64]>
    ) -> std::collections::BTreeMap<i64, HistoryRow> {
        run: {
            let mtypes = mtypes.map(<[i64]>::to_vec);
            move |c: RtmClient| async move { c.rooms_with_last_message(mtypes.as_deref()).await }
        },
    }
}
