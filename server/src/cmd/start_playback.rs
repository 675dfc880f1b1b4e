//! `startplayback {rid, files, repeat?, speed?, from_uid?, storage?}` →
//! `{}`: plays recorded manifests or prepared JSON Lines files, from the
//! recordings directory or the project's bucket, into room `rid` (see
//! `recording/playback.rs`). One playback per room (else 200087).

use rtm_protocol::methods::{Empty, StartPlayback};
use rtm_protocol::ErrorCode;

use super::{CmdContext, Handler};
use crate::error::RtmError;
use crate::recording::PlaybackRequest;

impl Handler for StartPlayback {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        let invalid = |ex: String| Err(RtmError::new(ErrorCode::InvalidParameter, ex));
        let repeat = self.repeat.unwrap_or(1);
        let Ok(repeat) = u32::try_from(repeat) else {
            return invalid(format!("repeat must be 0 (until stopped) or more, not {repeat}"));
        };
        let speed = self.speed.unwrap_or(1.0);
        if !(speed == 0.0 || (0.001..=1_000_000.0).contains(&speed)) {
            return invalid(format!("speed must be 0 (no waiting) or 0.001 to 1000000, not {speed}"));
        }
        let s3 = super::convert::storage_is_s3(self.storage.as_deref())?;
        let files: Vec<String> =
            self.files.split('|').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect();
        let files = Box::pin(ctx.recordings.playbacks.locate(ctx.pid, &files, s3)).await?;
        let room = ctx.room(self.rid);
        // Into a scheduled room, it ends with the room.
        let until_released = ctx.engine.schedule(room).is_some();
        let request = PlaybackRequest { files, repeat, speed, from_uid: self.from_uid, until_released };
        ctx.recordings.playbacks.start(ctx.engine, ctx.limits, room, request, ctx.now_ms)?;
        Ok(Empty {})
    }
}
