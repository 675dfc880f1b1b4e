//! What a mutation really changed.

use super::{Participant, Schedule};

/// What one mutation really changed, as the state reports it while applying
/// it, so that the commit step describes events without reading the state
/// again. Asked for only when someone may listen; otherwise the state
/// reports [`Delta::Unobserved`] and spends nothing on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Delta {
    /// Applied; what changed was not asked for.
    #[default]
    Unobserved,
    /// Nothing changed (a retry, or a change to what was already so).
    Nothing,
    /// Members joined, left or changed: in ascending uid order for joins
    /// and leaves, in request order for upserts.
    Members(Vec<MemberChange>),
    /// The info fields that changed, with their new values.
    Info { oinfo: Option<String>, pinfo: Option<String> },
    /// A ban's expiry before (if one was held, expired or not) and after
    /// (`None`: lifted). Permanent is `i64::MAX`.
    Ban { before: Option<i64>, after: Option<i64> },
    /// A scheduled room was created.
    RoomCreated,
    /// A scheduled room's window or policies changed.
    Schedule { before: Schedule, after: Schedule },
    /// A room that existed was released (with its schedule, if scheduled,
    /// and who its members were).
    Released { schedule: Option<Schedule>, members: Vec<i64> },
}

/// One member's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberChange {
    pub(crate) uid: i64,
    pub(crate) kind: MemberChangeKind,
    /// What is recorded about the member now (before, for a leave).
    pub(crate) participant: Participant,
}

/// How a member changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberChangeKind {
    Joined,
    /// Role or mode changed.
    Updated,
    Left,
}
