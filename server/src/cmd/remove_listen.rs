//! `removelisten {gids?, rids?, uids?, events?}` → `{}`: this connection
//! stops listening to these rooms, users and events.

use rtm_protocol::methods::{Empty, RemoveListen};

use super::{event_names, listen, CmdContext, Handler};
use crate::error::RtmError;

impl Handler for RemoveListen {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        let events = event_names(self.events.as_deref())?;
        listen(ctx, |filter| {
            for rid in self.rids.unwrap_or_default() {
                filter.rids.remove(&rid);
            }
            for uid in self.uids.unwrap_or_default() {
                filter.uids.remove(&uid);
            }
            for name in events {
                filter.remove_event(name);
            }
        })?;
        Ok(Empty {})
    }
}
