//! What a listener listens to.

use std::collections::HashSet;

use crate::model::{Event, EventName};

/// The event's bit in [`Filter::events`].
fn bit(name: EventName) -> u32 {
    1 << (name as u32)
}

/// A listener's subscription. An event reaches the listener when its name
/// is listened to (`all_events`, or in `events`) and it is about something
/// listened to: `all_rooms`, no rooms or users named at all, its room in
/// `rids`, or its user in `uids`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) rids: HashSet<i64>,
    pub(crate) uids: HashSet<i64>,
    events: u32,
    pub(crate) all_rooms: bool,
    pub(crate) all_events: bool,
}

impl Filter {
    pub(crate) fn add_event(&mut self, name: EventName) {
        self.events |= bit(name);
    }

    pub(crate) fn remove_event(&mut self, name: EventName) {
        self.events &= !bit(name);
    }

    /// Whether some event of room `rid` could match (so that changes to
    /// other rooms need not be described at all).
    pub(crate) fn may_match_room(&self, rid: i64) -> bool {
        (self.all_events || self.events != 0)
            && (self.all_rooms || self.rids.is_empty() || self.rids.contains(&rid) || !self.uids.is_empty())
    }

    pub(crate) fn matches(&self, event: &Event) -> bool {
        let named = self.all_events || self.events & bit(event.name) != 0;
        let about = self.all_rooms
            || (self.rids.is_empty() && self.uids.is_empty())
            || self.rids.contains(&event.rid)
            || event.uid.is_some_and(|uid| self.uids.contains(&uid));
        named && about
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: EventName, rid: i64, uid: Option<i64>) -> Event {
        Event { pid: 1, name, rid, uid, time_ms: 0, data: String::new(), endpoint: String::new() }
    }

    #[test]
    fn names_round_trip() {
        for &name in EventName::ALL {
            assert_eq!(EventName::from_name(name.as_str()), Some(name));
        }
        assert_eq!(EventName::from_name("logon"), None);
    }

    #[test]
    fn names_are_opt_in_and_subjects_narrow() {
        let mut filter = Filter::default();
        let joined = event(EventName::MemberJoined, 5, Some(9));
        assert!(!filter.matches(&joined), "nothing is listened to by default");
        filter.add_event(EventName::MemberJoined);
        assert!(filter.matches(&joined), "no rooms or users named: every room");
        filter.rids.insert(6);
        assert!(!filter.matches(&joined));
        filter.uids.insert(9);
        assert!(filter.matches(&joined), "its user is listened to");
        assert!(!filter.matches(&event(EventName::RoomCreated, 5, None)));
        filter.all_events = true;
        filter.all_rooms = true;
        assert!(filter.matches(&event(EventName::RoomCreated, 5, None)));
        filter.remove_event(EventName::MemberJoined);
        filter.all_events = false;
        assert!(!filter.matches(&joined));
    }

    #[test]
    fn rooms_that_cannot_match_are_skipped_early() {
        let mut filter = Filter::default();
        assert!(!filter.may_match_room(5), "no event names");
        filter.add_event(EventName::MemberJoined);
        assert!(filter.may_match_room(5), "every room");
        filter.rids.insert(6);
        assert!(!filter.may_match_room(5));
        assert!(filter.may_match_room(6));
        filter.uids.insert(1);
        assert!(filter.may_match_room(5), "its users may act anywhere");
    }
}
