//! The window and policies of a room created with `createroom`.

use serde::{Deserialize, Serialize};

/// Seconds in 180 days: the default validity window.
pub(crate) const DEFAULT_WINDOW_SECS: i64 = 180 * 24 * 3600;

/// A scheduled room's window and policies. Times are Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Schedule {
    pub(crate) valid_from_ms: i64,
    pub(crate) valid_until_ms: i64,
    /// 0 = no limit. (Durations are `u32` to keep the entry small: 100,000
    /// rooms hold one each.)
    pub(crate) max_seconds: u32,
    /// 0 = never.
    pub(crate) release_threshold: u32,
    /// 0 = never.
    pub(crate) idle_seconds: u32,
    /// When the second member joined; 0 = not yet.
    pub(crate) begin_ms: i64,
    /// Extend by 15 minutes instead of ending while members remain.
    #[serde(default)]
    pub(crate) auto_extend: bool,
}

impl Schedule {
    /// When the room reaches its maximum duration, if it has begun and has one.
    pub(crate) fn max_duration_deadline(&self) -> Option<i64> {
        (self.max_seconds > 0 && self.begin_ms > 0)
            .then(|| self.begin_ms.saturating_add(i64::from(self.max_seconds) * 1000))
    }

    /// When the room goes idle if nothing happens after `last_activity`.
    pub(crate) fn idle_deadline(&self, last_activity: i64) -> Option<i64> {
        (self.idle_seconds > 0).then(|| last_activity.saturating_add(i64::from(self.idle_seconds) * 1000))
    }

    /// Whether members may join at `now_ms`.
    pub(crate) fn is_open(&self, now_ms: i64) -> bool {
        self.valid_from_ms <= now_ms && now_ms < self.valid_until_ms
    }

    /// `scheduled`, `open` or `active`, for `getroom`.
    pub(crate) fn phase(&self, now_ms: i64) -> &'static str {
        if now_ms < self.valid_from_ms {
            "scheduled"
        } else if self.begin_ms == 0 {
            "open"
        } else {
            "active"
        }
    }
}

/// Why a room was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReleaseReason {
    /// `valid_until` passed.
    Expired,
    /// `max_seconds` after it began passed.
    MaxDuration,
    /// Its member count fell below the release threshold.
    Threshold,
    /// No operation for `idle_seconds`.
    Idle,
    /// `deleteroom`.
    Deleted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_half_open() {
        let s = Schedule {
            valid_from_ms: 100,
            valid_until_ms: 200,
            max_seconds: 0,
            release_threshold: 0,
            idle_seconds: 0,
            begin_ms: 0,
            auto_extend: false,
        };
        assert!(!s.is_open(99));
        assert!(s.is_open(100));
        assert!(s.is_open(199));
        assert!(!s.is_open(200));
        assert_eq!(s.phase(50), "scheduled");
        assert_eq!(s.phase(150), "open");
        assert_eq!(Schedule { begin_ms: 120, ..s }.phase(150), "active");
    }
}
