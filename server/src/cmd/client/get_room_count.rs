//! `getroomcount {rids}` → `{cn: {"<rid>": count}}`.

use rtm_protocol::client::GetRoomCount;
use rtm_protocol::methods::RoomCounts;

use super::{ClientContext, ClientHandler};
use crate::cmd::distinct_list;
use crate::error::RtmError;

impl ClientHandler for GetRoomCount {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<RoomCounts, RtmError> {
        let rids = match (self.rids, self.rid) {
            (Some(rids), _) => rids,
            (None, Some(rid)) => vec![rid],
            (None, None) => Vec::new(),
        };
        let rids = distinct_list("rids", &rids, ctx.limits)?;
        let cn = rids.into_iter().map(|rid| (rid, ctx.engine.member_count(ctx.room(rid)) as i32)).collect();
        Ok(RoomCounts { cn })
    }
}
