//! `addlisten {gids?, rids?, uids?, events?}` → `{}`: this connection also
//! listens to these rooms, users and events (see `events/filter.rs` for how
//! they combine). Events arrive as `pushevent` quests on this connection.

use rtm_protocol::methods::{AddListen, Empty};

use super::{event_names, listen, CmdContext, Handler};
use crate::error::RtmError;

impl Handler for AddListen {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        let events = event_names(self.events.as_deref())?;
        listen(ctx, |filter| {
            filter.rids.extend(self.rids.unwrap_or_default());
            filter.uids.extend(self.uids.unwrap_or_default());
            for name in events {
                filter.add_event(name);
            }
        })?;
        Ok(Empty {})
    }
}
