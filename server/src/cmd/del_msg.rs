//! `delmsg {mid, from, xid, type: 3}` → `{}`: deletes one room message from
//! history; it vanishes from later pages and from `getmsg`. A message not
//! there answers `{}` too, so a retry is safe. Other `type`s → 200034.

use rtm_protocol::methods::{DelMsg, Empty};

use super::{convert, CmdContext, Handler};
use crate::engine::Reader;
use crate::error::RtmError;

impl Handler for DelMsg {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        convert::room_message_kind(self.kind)?;
        ctx.engine.delete_room_message(ctx.room(self.xid), Reader::Backend, (self.from, self.mid)).await?;
        Ok(Empty {})
    }
}
