//! `getservertime {}` → `{mts}`.

use rtm_protocol::client::{GetServerTime, ServerTime};

use super::{ClientContext, ClientHandler};
use crate::error::RtmError;

impl ClientHandler for GetServerTime {
    async fn apply(self, ctx: &ClientContext<'_>) -> Result<ServerTime, RtmError> {
        Ok(ServerTime { mts: ctx.now_ms })
    }
}
