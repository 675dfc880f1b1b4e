//! `getroommsgcount {rid, begin, end, mtypes?}` → `{count}`, for a user in
//! the room (else 200040).

use rtm_protocol::client::GetRoomMsgCount;
use rtm_protocol::methods::MessageCount;

use super::{ClientContext, ClientHandler};
use crate::cmd::convert;
use crate::engine::Reader;
use crate::error::RtmError;

impl ClientHandler for GetRoomMsgCount {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<MessageCount, RtmError> {
        let mtypes = convert::mtypes_filter(self.mtypes, ctx.limits)?;
        let reader = Reader::Client { uid: ctx.user.uid };
        let room = ctx.room(self.rid);
        let count = ctx.engine.room_history_count(room, reader, (self.begin, self.end), &mtypes, ctx.now_ms).await?;
        Ok(MessageCount { count: count.messages })
    }
}
