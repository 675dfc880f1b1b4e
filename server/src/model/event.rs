//! Room events: what happened to a room, as backends that listen see it.

/// One room event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) pid: i64,
    pub(crate) name: EventName,
    /// The room (0 for project-wide bans).
    pub(crate) rid: i64,
    /// The user the event is about, if any.
    pub(crate) uid: Option<i64>,
    /// Unix milliseconds.
    pub(crate) time_ms: i64,
    /// Details, a JSON object.
    pub(crate) data: String,
    /// The client's address, for `login` and `logout`; empty otherwise.
    pub(crate) endpoint: String,
}

macro_rules! event_names {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// The room events.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum EventName {
            $($variant,)*
        }

        impl EventName {
            /// Every event, in declaration order.
            pub(crate) const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The wire name.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

event_names! {
    RoomCreated = "room_created",
    RoomUpdated = "room_updated",
    RoomReleased = "room_released",
    MemberJoined = "member_joined",
    MemberLeft = "member_left",
    MemberUpdated = "member_updated",
    BanAdded = "ban_added",
    BanRemoved = "ban_removed",
    BanExpired = "ban_expired",
    InfoChanged = "info_changed",
    Login = "login",
    Logout = "logout",
    RecordingStarted = "recording_started",
    RecordingCompleted = "recording_completed",
    PlaybackCompleted = "playback_completed",
}

impl EventName {
    /// The event called `name`.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.as_str() == name)
    }

    /// Every name, for error messages.
    pub(crate) fn list() -> String {
        Self::ALL.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
    }
}
