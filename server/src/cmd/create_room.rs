//! `createroom` → `{rid, valid_from, valid_until}`: a room with a validity
//! window and release policies. Defaults: `valid_from` = now, `valid_until`
//! = `valid_from` + 180 days, no policies.

use rtm_protocol::methods::{CreateRoom, CreatedRoom};
use rtm_protocol::ErrorCode;

use super::{convert, CmdContext, Handler};
use crate::engine::{check_window_bounds, non_negative, NewRoom};
use crate::error::RtmError;
use crate::model::{Schedule, DEFAULT_WINDOW_SECS};
use crate::recording::PlaybackRequest;

impl Handler for CreateRoom {
    async fn apply(self, ctx: &CmdContext<'_>) -> Result<CreatedRoom, RtmError> {
        // Boxed: its state across the waits (the request, the room, a
        // background's files) would otherwise size every quest's future.
        Box::pin(create(self, ctx)).await
    }
}

async fn create(request: CreateRoom, ctx: &CmdContext<'_>) -> Result<CreatedRoom, RtmError> {
    let valid_from = request.valid_from.unwrap_or(ctx.now_ms.div_euclid(1000));
    let valid_until = request.valid_until.unwrap_or(valid_from.saturating_add(DEFAULT_WINDOW_SECS));
    check_window_bounds(valid_from, valid_until, ctx.now_ms)?;
    for (key, info) in [("oinfo", &request.oinfo), ("pinfo", &request.pinfo)] {
        if let Some(info) = info.as_ref().filter(|i| i.len() > ctx.limits.max_info_bytes) {
            return Err(RtmError::new(
                ErrorCode::LargeMessageOrAttrs,
                format!("'{key}' is {} bytes; at most {} are allowed", info.len(), ctx.limits.max_info_bytes),
            ));
        }
    }
    let schedule = Schedule {
        valid_from_ms: valid_from.saturating_mul(1000),
        valid_until_ms: valid_until.saturating_mul(1000),
        max_seconds: non_negative("max_seconds", request.max_seconds)?,
        release_threshold: non_negative("release_threshold", request.release_threshold)?,
        idle_seconds: non_negative("idle_seconds", request.idle_seconds)?,
        begin_ms: 0,
        auto_extend: false,
    };
    let members = request.members.unwrap_or_default();
    super::bounded_list("members", members.len(), ctx.limits)?;
    if let Some(rid) = request.rid.filter(|&rid| rid <= 0) {
        return Err(RtmError::new(ErrorCode::InvalidParameter, format!("'rid' must be positive, got {rid}")));
    }
    // The background is checked before the room is made, and starts after.
    let background = match request.playback {
        Some(playback) => {
            let files: Vec<String> =
                playback.files.split('|').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect();
            let s3 = convert::storage_is_s3(playback.storage.as_deref())?;
            let files = Box::pin(ctx.recordings.playbacks.locate(ctx.pid, &files, s3)).await?;
            let repeat = playback.repeat.unwrap_or(0);
            let repeat = u32::try_from(repeat).map_err(|_| {
                RtmError::new(ErrorCode::InvalidParameter, format!("playback.repeat must be 0 or more, not {repeat}"))
            })?;
            Some(PlaybackRequest { files, repeat, speed: 1.0, from_uid: None, until_released: true })
        }
        None => None,
    };
    let room = NewRoom {
        rid: request.rid,
        schedule,
        oinfo: request.oinfo,
        pinfo: request.pinfo,
        members: members.into_iter().map(convert::member_role).collect(),
    };
    let rid = ctx.engine.create_room(ctx.pid, room, ctx.now_ms).await?;
    if let Some(background) = background {
        ctx.recordings.playbacks.start(ctx.engine, ctx.limits, ctx.room(rid), background, ctx.now_ms)?;
    }
    Ok(CreatedRoom { rid, valid_from, valid_until })
}

#[cfg(test)]
mod tests {
    use rtm_protocol::ErrorCode;
    use serde_json::json;

    use crate::cmd::test_support::run;
    use crate::cmd::Command;
    use crate::engine::Engine;

    #[test]
    fn defaults_to_now_and_180_days() {
        let state = Engine::default();
        let answer = run(&state, Command::CreateRoom, json!({"rid": 5})).unwrap();
        let (from, until) = (answer["valid_from"].as_i64().unwrap(), answer["valid_until"].as_i64().unwrap());
        assert_eq!(answer["rid"], 5);
        assert_eq!(until - from, 180 * 24 * 3600);
        let assigned = run(&state, Command::CreateRoom, json!({})).unwrap();
        assert!(assigned["rid"].as_i64().unwrap() > 0);
    }

    #[test]
    fn refuses_bad_windows_and_existing_rooms() {
        let state = Engine::default();
        run(&state, Command::AddRoomMember, json!({"rid": 1, "uid": 1})).unwrap();
        let code = |params| run(&state, Command::CreateRoom, params).unwrap_err().code;
        assert_eq!(code(json!({"rid": 1})), ErrorCode::InvalidParameter, "an implicit room counts as existing");
        assert_eq!(
            code(json!({"valid_from": 2_000_000_000, "valid_until": 2_000_000_000})),
            ErrorCode::InvalidParameter
        );
        assert_eq!(code(json!({"valid_from": 100, "valid_until": 200})), ErrorCode::InvalidParameter);
        assert_eq!(code(json!({"idle_seconds": -1})), ErrorCode::InvalidParameter);
        assert_eq!(code(json!({"max_seconds": 1i64 << 32})), ErrorCode::InvalidParameter, "durations fit 32 bits");
        assert_eq!(code(json!({"rid": -4})), ErrorCode::InvalidParameter);
        let future = json!({"valid_from": 4_000_000_000i64, "members": [{"uid": 1}]});
        assert_eq!(code(future), ErrorCode::PermissionDenied, "members cannot join before the window");
        run(&state, Command::CreateRoom, json!({"rid": 2})).unwrap();
        assert_eq!(code(json!({"rid": 2})), ErrorCode::InvalidParameter);
    }

    #[test]
    fn of_racing_creations_of_one_rid_exactly_one_succeeds() {
        for round in 0..20 {
            let state = Engine::default();
            let wins: usize = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..4)
                    .map(|_| scope.spawn(|| run(&state, Command::CreateRoom, json!({"rid": 100 + round})).is_ok()))
                    .collect();
                racers.into_iter().map(|r| usize::from(r.join().unwrap())).sum()
            });
            assert_eq!(wins, 1);
        }
    }

    #[test]
    fn members_join_with_their_roles() {
        let state = Engine::default();
        let members = json!([{"uid": 1, "role": "presenter"}, {"uid": 2, "role": "consumer"}]);
        run(&state, Command::CreateRoom, json!({"rid": 9, "members": members})).unwrap();
        let room = run(&state, Command::GetRoom, json!({"rid": 9})).unwrap();
        assert_eq!((room["member_count"].clone(), room["state"].clone()), (json!(2), json!("active")));
        let page = run(&state, Command::ListRoomMembers, json!({"rid": 9})).unwrap();
        assert_eq!(page["members"][1]["mode"], 3, "consumers receive only");
    }

    #[test]
    fn joins_outside_the_window_are_refused() {
        let state = Engine::default();
        run(&state, Command::CreateRoom, json!({"rid": 3, "valid_from": 4_000_000_000i64})).unwrap();
        let err = run(&state, Command::AddRoomMember, json!({"rid": 3, "uid": 1})).unwrap_err();
        assert_eq!(err.code, ErrorCode::PermissionDenied);
        let err = run(&state, Command::AddUserRooms, json!({"rids": [3], "uid": 1})).unwrap_err();
        assert_eq!(err.code, ErrorCode::PermissionDenied);
        assert_eq!(run(&state, Command::GetRoom, json!({"rid": 3})).unwrap()["state"], "scheduled");
    }
}
