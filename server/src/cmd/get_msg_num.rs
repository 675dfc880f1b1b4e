//! `getmsgnum {type: 3, xid, mtypes?, begin?, end?}` → `{sender, num}`: how
//! many of room `xid`'s messages history holds between `begin` and `end`,
//! and from how many distinct senders (the Python server SDK's
//! `get_message_num`). Other `type`s → 200034.

use rtm_protocol::methods::{GetMsgNum, MessageNum};

use super::{convert, CmdContext, Handler};
use crate::engine::Reader;
use crate::error::RtmError;

impl Handler for GetMsgNum {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<MessageNum, RtmError> {
        convert::room_message_kind(self.kind)?;
        let mtypes = convert::mtypes_filter(self.mtypes, ctx.limits)?;
        let room = ctx.room(self.xid);
        let counted =
            ctx.engine.room_history_count(room, Reader::Backend, (self.begin, self.end), &mtypes, ctx.now_ms).await?;
        Ok(MessageNum { sender: counted.senders, num: counted.messages })
    }
}
