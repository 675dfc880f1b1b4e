//! `delmsg {mid, from, xid, type: 3}` → `{}`: the user deletes one of its
//! own messages (`from` must be the user: else 200021) from room `xid`'s
//! history.

use rtm_protocol::client::DelMsg;
use rtm_protocol::methods::Empty;

use super::{ClientContext, ClientHandler};
use crate::cmd::convert;
use crate::engine::Reader;
use crate::error::RtmError;

impl ClientHandler for DelMsg {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<Empty, RtmError> {
        convert::room_message_kind(self.kind)?;
        let reader = Reader::Client { uid: ctx.user.uid };
        ctx.engine.delete_room_message(ctx.room(self.xid), reader, (self.from, self.mid)).await?;
        Ok(Empty {})
    }
}
