//! `sendroommsg {rid, mid, mtype, msg, attrs}` → `{mtime}`: the user says
//! `msg` in room `rid`. Refused when the user is not a member (200040), is
//! muted in the room or in all rooms (200045), or its mode does not send
//! (receive only, neither, or a consumer's default: 200021); for an mtype a
//! client may not send (200005) and for `msg`/`attrs` over the limits
//! (200030), and past `limits.client_messages_per_second` for the user
//! (200010). The user's other sessions receive it; the sending one does not.

use rtm_protocol::client::{SendRoomMsg, SentMessage};
use rtm_protocol::ErrorCode;

use super::{ClientContext, ClientHandler};
use crate::cmd::convert;
use crate::engine::Sender;
use crate::error::RtmError;
use crate::model::RoomMessage;

impl ClientHandler for SendRoomMsg {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<SentMessage, RtmError> {
        let message = RoomMessage {
            pid: ctx.user.pid,
            rid: self.rid,
            from: ctx.user.uid,
            mid: self.mid,
            mtype: self.mtype,
            body: convert::body(self.msg)?,
            attrs: self.attrs,
            mtime: 0,
        };
        if !ctx.engine.presence().may_send(ctx.user) {
            let rate = ctx.limits.client_messages_per_second;
            return Err(RtmError::new(ErrorCode::FrequencyLimited, format!("at most {rate} messages a second")));
        }
        let sender = Sender::Client { session: ctx.session };
        let mtime = ctx.engine.send_room_message(message, sender, ctx.limits, ctx.now_ms).await?;
        Ok(SentMessage { mtime })
    }
}
