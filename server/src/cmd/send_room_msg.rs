//! `sendroommsg {mtype, from, rid, mid, msg, attrs}` → `{mtime}`: the
//! backend says `msg` in room `rid` as user `from`. Trusted: no membership,
//! mute or mode check (a system uid may speak); size and mtype (1 to 127)
//! checks apply. A retry with the same `(from, rid, mid)` and content
//! answers the first `mtime` and is not delivered twice.

use rtm_protocol::client::SentMessage;
use rtm_protocol::methods::SendRoomMsg;

use super::{convert, CmdContext, Handler};
use crate::engine::Sender;
use crate::error::RtmError;
use crate::model::RoomMessage;

impl Handler for SendRoomMsg {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<SentMessage, RtmError> {
        let message = RoomMessage {
            pid: ctx.pid,
            rid: self.rid,
            from: self.from,
            mid: self.mid,
            mtype: self.mtype,
            body: convert::body(self.msg)?,
            attrs: self.attrs,
            mtime: 0,
        };
        let mtime = ctx.engine.send_room_message(message, Sender::Backend, ctx.limits, ctx.now_ms).await?;
        Ok(SentMessage { mtime })
    }
}
