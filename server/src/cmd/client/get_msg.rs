//! `getmsg {mid, from, xid, type: 3}` → `{id, mtype, msg, attrs, mtime}`:
//! one message of room `xid`, for a user in the room (else 200040); 200070
//! if history does not have it.

use rtm_protocol::client::{GetMsg, MessageInfo};

use super::{ClientContext, ClientHandler};
use crate::cmd::convert;
use crate::engine::Reader;
use crate::error::RtmError;

impl ClientHandler for GetMsg {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<MessageInfo, RtmError> {
        convert::room_message_kind(self.kind)?;
        let reader = Reader::Client { uid: ctx.user.uid };
        let message = ctx.engine.room_message(ctx.room(self.xid), reader, (self.from, self.mid), ctx.now_ms).await?;
        Ok(convert::message_info(message))
    }
}
