//! `getroomsopeninfo {rids}` → `{info: {"<rid>": oinfo}}`.

use rtm_protocol::client::{GetRoomsOpenInfo, RoomsOpenInfo};

use super::{ClientContext, ClientHandler};
use crate::cmd::distinct_list;
use crate::error::RtmError;

impl ClientHandler for GetRoomsOpenInfo {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<RoomsOpenInfo, RtmError> {
        let rids = distinct_list("rids", &self.rids, ctx.limits)?;
        let info = rids.into_iter().map(|rid| (rid.to_string(), ctx.engine.room_info(ctx.room(rid)).0)).collect();
        Ok(RoomsOpenInfo { info })
    }
}
