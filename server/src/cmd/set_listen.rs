//! `setlisten {gids?, rids?, uids?, events?, p2p?, group?, room?, ev?}` →
//! `{}`: replaces what this connection listens to. `room: true` listens to
//! every room and `ev: true` to every event; `gids`, `p2p` and `group` are
//! accepted for compatibility with the RTM SDKs (this server has no groups
//! or peer messages).

use rtm_protocol::methods::{Empty, SetListen};

use super::{event_names, listen, CmdContext, Handler};
use crate::error::RtmError;
use crate::events::Filter;

impl Handler for SetListen {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        let mut replacement = Filter::default();
        replacement.rids = self.rids.unwrap_or_default().into_iter().collect();
        replacement.uids = self.uids.unwrap_or_default().into_iter().collect();
        replacement.all_rooms = self.room.unwrap_or(false);
        replacement.all_events = self.ev.unwrap_or(false);
        for name in event_names(self.events.as_deref())? {
            replacement.add_event(name);
        }
        listen(ctx, |filter| *filter = replacement)?;
        Ok(Empty {})
    }
}
