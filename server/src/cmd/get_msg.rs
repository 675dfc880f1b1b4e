//! `getmsg {mid, from, xid, type: 3}` → `{id, mtype, msg, attrs, mtime}`:
//! one room message by its sender's `mid`; 200070 if history does not have
//! it (never sent, deleted, or past retention). Other `type`s → 200034.

use rtm_protocol::methods::{GetMsg, MessageInfo};

use super::{convert, CmdContext, Handler};
use crate::engine::Reader;
use crate::error::RtmError;

impl Handler for GetMsg {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<MessageInfo, RtmError> {
        convert::room_message_kind(self.kind)?;
        let message =
            ctx.engine.room_message(ctx.room(self.xid), Reader::Backend, (self.from, self.mid), ctx.now_ms).await?;
        Ok(convert::message_info(message))
    }
}
