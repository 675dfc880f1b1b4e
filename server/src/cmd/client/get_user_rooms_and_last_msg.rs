//! `getuserroomsandlastmsg {mtypes?}` → `{rooms: {"<rid>": row}}`: the
//! user's rooms, each with its newest message (of `mtypes`); rooms with no
//! such message in history are left out.

use rtm_protocol::client::{GetUserRoomsAndLastMsg, RoomsLastMessage};

use super::{ClientContext, ClientHandler};
use crate::cmd::convert;
use crate::error::RtmError;

impl ClientHandler for GetUserRoomsAndLastMsg {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<RoomsLastMessage, RtmError> {
        let mtypes = convert::mtypes_filter(self.mtypes, ctx.limits)?;
        let newest = ctx.engine.rooms_newest_message(ctx.user, &mtypes, ctx.now_ms).await?;
        let rooms = newest.into_iter().map(|(rid, message)| (rid.to_string(), convert::history_row(message))).collect();
        Ok(RoomsLastMessage { rooms })
    }
}
