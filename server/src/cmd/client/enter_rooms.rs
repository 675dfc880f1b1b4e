//! `enterrooms {rids}` → `{}`: `enterroom` for each room, in order; the
//! first refusal stops there (earlier rooms stay entered).

use rtm_protocol::client::EnterRooms;
use rtm_protocol::methods::Empty;

use super::{ClientContext, ClientHandler};
use crate::cmd::distinct_list;
use crate::error::RtmError;

impl ClientHandler for EnterRooms {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<Empty, RtmError> {
        for rid in distinct_list("rids", &self.rids, ctx.limits)? {
            ctx.engine.enter_room(ctx.user, rid, ctx.limits.max_rooms_per_user, ctx.now_ms).await?;
            ctx.engine.presence().note_room(ctx.user, rid, true);
        }
        Ok(Empty {})
    }
}
