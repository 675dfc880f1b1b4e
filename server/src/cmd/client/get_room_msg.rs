//! `getroommsg {rid, desc, num, begin?, end?, lastid?, mtypes?}` →
//! `{num, lastid, begin, end, msgs}`: a page of room `rid`'s history, for a
//! user in the room (else 200040), muted or not.

use rtm_protocol::client::GetRoomMsg;
use rtm_protocol::methods::HistoryPage;

use super::{ClientContext, ClientHandler};
use crate::cmd::convert;
use crate::engine::Reader;
use crate::error::RtmError;

impl ClientHandler for GetRoomMsg {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<HistoryPage, RtmError> {
        let query =
            convert::page_query((self.desc, self.num, self.begin, self.end, self.lastid), self.mtypes, ctx.limits)?;
        let reader = Reader::Client { uid: ctx.user.uid };
        let rows = ctx.engine.room_history(ctx.room(self.rid), reader, &query, ctx.now_ms).await?;
        Ok(convert::history_page(rows, &query))
    }
}
