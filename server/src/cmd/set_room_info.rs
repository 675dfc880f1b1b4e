//! `setroominfo {rid, oinfo?, pinfo?}` → `{}`.
//!
//! An absent field leaves the stored one unchanged; at least one must be
//! present. Setting both to `""` clears the info, and an empty room with no
//! info is dropped.

use rtm_protocol::methods::{Empty, SetRoomInfo};
use rtm_protocol::ErrorCode;

use super::{CmdContext, Handler};
use crate::config::Limits;
use crate::error::RtmError;

/// Refuses (200030) an info field over `limits.max_info_bytes`.
pub(crate) fn check_size(key: &str, value: Option<&String>, limits: &Limits) -> Result<(), RtmError> {
    match value {
        Some(v) if v.len() > limits.max_info_bytes => Err(RtmError::new(
            ErrorCode::LargeMessageOrAttrs,
            format!("'{key}' is {} bytes; at most {} are allowed", v.len(), limits.max_info_bytes),
        )),
        _ => Ok(()),
    }
}

impl Handler for SetRoomInfo {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<Empty, RtmError> {
        if self.oinfo.is_none() && self.pinfo.is_none() {
            return Err(RtmError::new(ErrorCode::ProtoKeyNotFound, "missing parameter 'oinfo' or 'pinfo'"));
        }
        check_size("oinfo", self.oinfo.as_ref(), ctx.limits)?;
        check_size("pinfo", self.pinfo.as_ref(), ctx.limits)?;
        ctx.engine.set_info(ctx.room(self.rid), self.oinfo, self.pinfo, ctx.now_ms).await?;
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use rtm_protocol::ErrorCode;
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;
    use crate::model::RoomKey;

    #[test]
    fn absent_fields_are_left_unchanged() {
        let state = Engine::default();
        run(&state, Command::SetRoomInfo, json!({"rid": 7, "oinfo": "o", "pinfo": "p"})).unwrap();
        run(&state, Command::SetRoomInfo, json!({"rid": 7, "pinfo": "p2"})).unwrap();
        assert_eq!(state.room_info(RoomKey { pid: 1, rid: 7 }), ("o".into(), "p2".into()));
    }

    #[test]
    fn needs_one_field_within_the_size_limit() {
        let state = Engine::default();
        let err = run(&state, Command::SetRoomInfo, json!({"rid": 7})).unwrap_err();
        assert_eq!(err.code, ErrorCode::ProtoKeyNotFound);
        let big = "x".repeat(64 * 1024 + 1);
        let err = run(&state, Command::SetRoomInfo, json!({"rid": 7, "oinfo": big})).unwrap_err();
        assert_eq!(err.code, ErrorCode::LargeMessageOrAttrs);
        let exact = "x".repeat(64 * 1024);
        run(&state, Command::SetRoomInfo, json!({"rid": 7, "pinfo": exact})).unwrap();
    }
}
