//! What the client listens to: the filter the listen methods take, the
//! state the client remembers, and the on-connect hook that listens again
//! after a reconnect (the server keeps subscriptions per connection).
//!
//! The state changes only on the connection task: a listen call carries an
//! answer hook that applies its change when the server accepts it
//! ([`ListenChange::apply_when_accepted`]), and the same task runs the
//! on-connect hook that restores the state ([`Relisten`]), so no accepted
//! change can slip between the two.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use rtm_protocol::methods::{AddListen, Empty, Method, RemoveListen, SetListen};
use tracing::warn;

use crate::connection::AnswerHook;
use crate::connector::{Handshake, HookFuture, OnConnect};
use crate::error::{Error, ErrorKind};
use crate::event::{self, ConnectionEvent, EventHandler};
use crate::quest::{decode_answer, Signer};

/// Rooms, users and event names to add to or remove from what the client
/// listens to ([`add_listen`](crate::RtmServerClient::add_listen),
/// [`remove_listen`](crate::RtmServerClient::remove_listen)), or to listen
/// to instead ([`set_listen`](crate::RtmServerClient::set_listen)).
///
/// The server sends an event when its name is listened to (named, or every
/// name with `set_listen`'s `all_events`) and it is about something
/// listened to: a named room, a named user, every room (`all_rooms`), or
/// anything at all when no room or user is named. So name events (or set
/// `all_events`) to receive any.
///
/// ```
/// use rtm_sdk::{ListenFilter, RoomEvent};
///
/// let filter = ListenFilter::new()
///     .rooms([7001, 7002])
///     .events([RoomEvent::MEMBER_JOINED, RoomEvent::MEMBER_LEFT]);
/// assert_eq!(filter.rids, vec![7001, 7002]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenFilter {
    /// Rooms whose events to receive.
    pub rids: Vec<i64>,
    /// Users whose events to receive (member and ban events name a user).
    pub uids: Vec<i64>,
    /// Event names, e.g. [`RoomEvent::MEMBER_JOINED`](crate::RoomEvent::MEMBER_JOINED).
    pub events: Vec<String>,
}

impl ListenFilter {
    /// An empty filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds rooms.
    pub fn rooms(mut self, rids: impl IntoIterator<Item = i64>) -> Self {
        self.rids.extend(rids);
        self
    }

    /// Adds users.
    pub fn users(mut self, uids: impl IntoIterator<Item = i64>) -> Self {
        self.uids.extend(uids);
        self
    }

    /// Adds event names.
    pub fn events(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.events.extend(names.into_iter().map(Into::into));
        self
    }

    /// Whether the filter names nothing.
    pub fn is_empty(&self) -> bool {
        self.rids.is_empty() && self.uids.is_empty() && self.events.is_empty()
    }
}

/// What the client listens to, as the server has confirmed it: the sum of
/// the successful listen calls of every clone of the client
/// ([`RtmServerClient::listening`](crate::RtmServerClient::listening)).
/// After a reconnect the client sends it as one `setlisten`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenState {
    /// Rooms listened to.
    pub rids: BTreeSet<i64>,
    /// Users listened to.
    pub uids: BTreeSet<i64>,
    /// Event names listened to.
    pub events: BTreeSet<String>,
    /// Every room (`setlisten`'s `room: true`).
    pub all_rooms: bool,
    /// Every event name (`setlisten`'s `ev: true`).
    pub all_events: bool,
}

impl ListenState {
    /// Whether the client listens to nothing.
    pub fn is_empty(&self) -> bool {
        self.rids.is_empty() && self.uids.is_empty() && self.events.is_empty() && !self.all_rooms && !self.all_events
    }

    /// The state `set_listen(filter, all_rooms, all_events)` leaves.
    pub(crate) fn from_filter(filter: &ListenFilter, all_rooms: bool, all_events: bool) -> Self {
        Self {
            rids: filter.rids.iter().copied().collect(),
            uids: filter.uids.iter().copied().collect(),
            events: filter.events.iter().cloned().collect(),
            all_rooms,
            all_events,
        }
    }

    pub(crate) fn apply(&mut self, change: &ListenChange) {
        match change {
            ListenChange::Add(filter) => {
                self.rids.extend(&filter.rids);
                self.uids.extend(&filter.uids);
                self.events.extend(filter.events.iter().cloned());
            }
            ListenChange::Remove(filter) => {
                for rid in &filter.rids {
                    self.rids.remove(rid);
                }
                for uid in &filter.uids {
                    self.uids.remove(uid);
                }
                for name in &filter.events {
                    self.events.remove(name);
                }
            }
            ListenChange::Set(state) => *self = state.clone(),
        }
    }

    /// The `setlisten` request that replaces a connection's subscriptions
    /// with this state. Empty lists are left out (a replace treats a missing
    /// list as empty, and a strict server may refuse an empty one); the two
    /// flags are always sent, so that `false` clears them.
    pub(crate) fn to_request(&self) -> SetListen {
        SetListen {
            rids: non_empty(self.rids.iter().copied().collect()),
            uids: non_empty(self.uids.iter().copied().collect()),
            events: non_empty(self.events.iter().cloned().collect()),
            room: Some(self.all_rooms),
            ev: Some(self.all_events),
            ..SetListen::default()
        }
    }
}

/// A listen call, applied to the remembered [`ListenState`] when the server
/// accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenChange {
    Add(ListenFilter),
    Remove(ListenFilter),
    Set(ListenState),
}

impl ListenChange {
    /// Encodes the quest for this change (seq 0, signed).
    pub(crate) fn encode(&self, signer: &Signer) -> Result<Bytes, Error> {
        match self {
            Self::Add(filter) => {
                let request = AddListen {
                    gids: None,
                    rids: non_empty(filter.rids.clone()),
                    uids: non_empty(filter.uids.clone()),
                    events: non_empty(filter.events.clone()),
                };
                signer.encode(AddListen::NAME, &request)
            }
            Self::Remove(filter) => {
                let request = RemoveListen {
                    gids: None,
                    rids: non_empty(filter.rids.clone()),
                    uids: non_empty(filter.uids.clone()),
                    events: non_empty(filter.events.clone()),
                };
                signer.encode(RemoveListen::NAME, &request)
            }
            Self::Set(state) => signer.encode(SetListen::NAME, &state.to_request()),
        }
    }

    /// The answer hook that applies this change to `state` if the server
    /// accepts the call.
    pub(crate) fn apply_when_accepted(self, state: Arc<Mutex<ListenState>>) -> AnswerHook {
        Box::new(move |answer| {
            if answer.status == 0 {
                state.lock().unwrap_or_else(PoisonError::into_inner).apply(&self);
            }
        })
    }
}

/// The on-connect hook that restores the listen state on a new connection:
/// one `setlisten` with the whole state, written ahead of every call queued
/// meanwhile and without waiting for its answer (the server executes one
/// connection's quests in order, so those calls see the restored state).
/// Nothing is sent while the state is empty, as on the first connection,
/// whose server side listens to nothing. A refused or unanswered restore is
/// reported as [`ConnectionEvent::ListenRestoreFailed`] and leaves the
/// connection up; the state stays, for the next reconnect.
pub(crate) struct Relisten {
    pub(crate) state: Arc<Mutex<ListenState>>,
    pub(crate) signer: Signer,
    /// How long the server has to answer the `setlisten`.
    pub(crate) timeout: Duration,
    pub(crate) on_event: Option<EventHandler>,
}

impl OnConnect for Relisten {
    fn on_connect<'a>(&'a self, handshake: &'a mut Handshake) -> HookFuture<'a> {
        self.restore(handshake);
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Relisten {
    fn restore(&self, handshake: &mut Handshake) {
        let request = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.is_empty() {
                return;
            }
            state.to_request()
        };
        let frame = match self.signer.encode(SetListen::NAME, &request) {
            Ok(frame) => frame,
            Err(e) => return restore_failed(self.on_event.as_ref(), e.to_string()),
        };
        let on_event = self.on_event.clone();
        handshake.send(
            &frame,
            self.timeout,
            Box::new(move |answer| {
                let reason = match answer {
                    Ok(answer) => match decode_answer::<Empty>(&answer) {
                        Ok(_) => return,
                        Err(e) => e.to_string(),
                    },
                    // The connection dropped or the client closed: the next
                    // connection, if any, restores the state again.
                    Err(e) if e.kind() == ErrorKind::Connection => return,
                    Err(e) => e.message().to_owned(),
                };
                restore_failed(on_event.as_ref(), reason);
            }),
        );
    }
}

fn restore_failed(on_event: Option<&EventHandler>, reason: String) {
    warn!(%reason, "could not restore the listen state after reconnecting");
    event::emit(on_event, ConnectionEvent::ListenRestoreFailed { reason });
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(rids: &[i64], uids: &[i64], events: &[&str]) -> ListenFilter {
        ListenFilter::new().rooms(rids.iter().copied()).users(uids.iter().copied()).events(events.iter().copied())
    }

    #[test]
    fn add_remove_and_set_accumulate_like_the_server() {
        let mut state = ListenState::default();
        assert!(state.is_empty());
        state.apply(&ListenChange::Add(filter(&[1, 2], &[9], &["member_joined"])));
        state.apply(&ListenChange::Add(filter(&[2, 3], &[], &["member_left"])));
        state.apply(&ListenChange::Remove(filter(&[1, 42], &[9], &["member_joined"])));
        assert_eq!(state.rids, BTreeSet::from([2, 3]));
        assert!(state.uids.is_empty());
        assert_eq!(state.events, BTreeSet::from(["member_left".to_owned()]));

        state.apply(&ListenChange::Set(ListenState::from_filter(&filter(&[5, 5], &[], &[]), false, true)));
        assert_eq!(state.rids, BTreeSet::from([5]));
        assert!(state.events.is_empty() && state.all_events && !state.all_rooms);
    }

    #[test]
    fn the_setlisten_request_leaves_out_empty_lists_but_not_the_flags() {
        let state = ListenState::from_filter(&filter(&[3, 1], &[], &["ban_added"]), true, false);
        let request = state.to_request();
        assert_eq!(request.rids, Some(vec![1, 3]));
        assert_eq!(request.uids, None);
        assert_eq!(request.events, Some(vec!["ban_added".to_owned()]));
        assert_eq!((request.room, request.ev), (Some(true), Some(false)));
        assert_eq!((request.gids, request.p2p, request.group), (None, None, None));
    }
}
