//! Between the wire types (`rtm_protocol::methods`) and the server's own
//! (`model`): the handlers are the edge where one becomes the other.

use rtm_protocol::methods as wire;

use rtm_protocol::ErrorCode;

use crate::error::RtmError;
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
