//! `getroommsg {uid, rid, desc, num, begin?, end?, lastid?, mtypes?}` →
//! `{num, lastid, begin, end, msgs}`: a page of room `rid`'s history. The
//! server API reads every room (`uid` names whose view; it is not checked).
//! `num` above `history.max_page` is cut to it; below 1 → 200034.

use rtm_protocol::methods::{GetRoomMsg, HistoryPage};

use super::{convert, CmdContext, Handler};
use crate::engine::Reader;
use crate::error::RtmError;

impl Handler for GetRoomMsg {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<HistoryPage, RtmError> {
        let query =
            convert::page_query((self.desc, self.num, self.begin, self.end, self.lastid), self.mtypes, ctx.limits)?;
        let rows = ctx.engine.room_history(ctx.room(self.rid), Reader::Backend, &query, ctx.now_ms).await?;
        Ok(convert::history_page(rows, &query))
    }
}
