//! Between the wire types (`rtm_protocol::methods`) and the server's own
//! (`model`): the handlers are the edge where one becomes the other.

use rtm_protocol::methods as wire;

use rtm_protocol::ErrorCode;

use crate::config::Limits;
use crate::error::RtmError;
use crate::history::{PageQuery, StoredMessage};
use crate::model::{Body, MemberRole, Mode, Participant, Role};

pub(crate) fn role(role: wire::Role) -> Role {
    match role {
        wire::Role::Presenter => Role::Presenter,
        wire::Role::Attendee => Role::Attendee,
        wire::Role::Consumer => Role::Consumer,
    }
}

pub(crate) fn wire_role(role: Role) -> wire::Role {
    match role {
        Role::Presenter => wire::Role::Presenter,
        Role::Attendee => wire::Role::Attendee,
        Role::Consumer => wire::Role::Consumer,
    }
}

pub(crate) fn mode(mode: wire::Mode) -> Mode {
    match mode {
        wire::Mode::SendReceive => Mode::SendReceive,
        wire::Mode::SendOnly => Mode::SendOnly,
        wire::Mode::ReceiveOnly => Mode::ReceiveOnly,
        wire::Mode::Neither => Mode::Neither,
    }
}

pub(crate) fn wire_mode(mode: Mode) -> wire::Mode {
    match mode {
        Mode::SendReceive => wire::Mode::SendReceive,
        Mode::SendOnly => wire::Mode::SendOnly,
        Mode::ReceiveOnly => wire::Mode::ReceiveOnly,
        Mode::Neither => wire::Mode::Neither,
    }
}

pub(crate) fn member_role(spec: wire::MemberSpec) -> MemberRole {
    MemberRole { uid: spec.uid, role: role(spec.role) }
}

/// A message body as sent: text or binary (a map is refused).
pub(crate) fn body(msg: rtm_protocol::client::MessageBody) -> Result<Body, RtmError> {
    use rtm_protocol::client::MessageBody;
    match msg {
        MessageBody::Text(text) => Ok(Body::Text(text)),
        MessageBody::Binary(bytes) => Ok(Body::Binary(bytes)),
        MessageBody::Chat(_) => Err(RtmError::new(
            ErrorCode::ProtoTypeConvert,
            "parameter 'msg' is invalid: a string or binary message is expected, not a map",
        )),
    }
}

/// A member as `listroommembers` reports it.
pub(crate) fn room_member(uid: i64, participant: Participant) -> wire::RoomMember {
    wire::RoomMember {
        uid,
        role: wire_role(participant.role),
        mode: wire_mode(participant.mode),
        joined_at: participant.joined_at_ms,
    }
}

/// A history row as `getroommsg` and `getuserroomsandlastmsg` send it:
/// chat stays plain text.
pub(crate) fn history_row(message: StoredMessage) -> wire::HistoryRow {
    wire::HistoryRow {
        id: message.id,
        from: message.from,
        mtype: message.mtype,
        mid: message.mid,
        deleted: false,
        msg: wire_body(message.body),
        attrs: message.attrs,
        mtime: message.mtime,
    }
}

pub(crate) fn wire_body(body: Body) -> rtm_protocol::client::MessageBody {
    match body {
        Body::Text(text) => rtm_protocol::client::MessageBody::Text(text),
        Body::Binary(bytes) => rtm_protocol::client::MessageBody::Binary(bytes),
    }
}

/// `getroommsg`'s parameters, checked: `num` from 1 (larger than the
/// configured page is cut to it); `mtypes` within the list limit.
pub(crate) fn page_query(
    (desc, num, begin, end, lastid): (bool, i64, i64, i64, i64),
    mtypes: Option<Vec<i64>>,
    limits: &Limits,
) -> Result<PageQuery, RtmError> {
    if num < 1 {
        return Err(RtmError::new(ErrorCode::InvalidParameter, format!("'num' must be at least 1, got {num}")));
    }
    Ok(PageQuery {
        desc,
        num: num.min(i64::from(u32::MAX)) as usize,
        begin,
        end,
        lastid,
        mtypes: mtypes_filter(mtypes, limits)?,
    })
}

pub(crate) fn mtypes_filter(mtypes: Option<Vec<i64>>, limits: &Limits) -> Result<Vec<i64>, RtmError> {
    let mtypes = mtypes.unwrap_or_default();
    if mtypes.len() > limits.max_list_len {
        let ex = format!("'mtypes' has {} items; at most {} are allowed", mtypes.len(), limits.max_list_len);
        return Err(RtmError::new(ErrorCode::TooManyItemsInParameters, ex));
    }
    Ok(mtypes)
}

/// The answer page: the rows, and the cursor to send back (the request's
/// own when the page is empty).
pub(crate) fn history_page(rows: Vec<StoredMessage>, query: &PageQuery) -> wire::HistoryPage {
    let lastid = rows.last().map_or(query.lastid, |row| row.id);
    let msgs: Vec<_> = rows.into_iter().map(history_row).collect();
    wire::HistoryPage { num: msgs.len() as i64, lastid, begin: query.begin, end: query.end, msgs }
}

/// `type` of `getmsg`/`delmsg`: only room messages (3) are kept here.
pub(crate) fn room_message_kind(kind: i64) -> Result<(), RtmError> {
    match kind {
        wire::ROOM_MESSAGE_TYPE => Ok(()),
        1 | 2 | 4 => Err(RtmError::new(
            ErrorCode::InvalidParameter,
            format!("'type' {kind} ({}) is not supported by this server; only 3 (room messages) is", kind_name(kind)),
        )),
        _ => Err(RtmError::new(ErrorCode::InvalidParameter, format!("'type' must be 3 (room message), got {kind}"))),
    }
}

fn kind_name(kind: i64) -> &'static str {
    match kind {
        1 => "P2P messages",
        2 => "group messages",
        _ => "broadcast messages",
    }
}

/// `getmsg`'s answer.
pub(crate) fn message_info(message: StoredMessage) -> wire::MessageInfo {
    wire::MessageInfo {
        id: message.id,
        mtype: message.mtype,
        msg: wire_body(message.body),
        attrs: message.attrs,
        mtime: message.mtime,
    }
}

/// `storage`: `local` (the default) or `s3`; whether it is `s3`.
pub(crate) fn storage_is_s3(storage: Option<&str>) -> Result<bool, RtmError> {
    match storage {
        None | Some("local") => Ok(false),
        Some("s3") => Ok(true),
        Some(other) => {
            Err(RtmError::new(ErrorCode::InvalidParameter, format!("storage must be local or s3, not '{other}'")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        for r in wire::Role::ALL {
            assert_eq!(wire_role(role(r)), r);
            assert_eq!(role(r).as_str(), r.as_str());
        }
        for code in 1..=4 {
            let m = wire::Mode::from_code(code).unwrap();
            assert_eq!(wire_mode(mode(m)), m);
            assert_eq!(i64::from(mode(m).code()), code);
        }
    }
}
