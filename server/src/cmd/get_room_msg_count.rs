//! `getroommsgcount {uid?, rid, begin?, end?, mtypes?}` → `{count}`: how
//! many of room `rid`'s messages history holds between `begin` and `end`.

use rtm_protocol::methods::{GetRoomMsgCount, MessageCount};

use super::{convert, CmdContext, Handler};
use crate::engine::Reader;
use crate::error::RtmError;

impl Handler for GetRoomMsgCount {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<MessageCount, RtmError> {
        let mtypes = convert::mtypes_filter(self.mtypes, ctx.limits)?;
        let room = ctx.room(self.rid);
        let count =
            ctx.engine.room_history_count(room, Reader::Backend, (self.begin, self.end), &mtypes, ctx.now_ms).await?;
        Ok(MessageCount { count: count.messages })
    }
}
