//! Wall-clock time. Ban expiries are absolute Unix times so that they mean
//! the same thing after a restart.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> i64 {
    now_ms().div_euclid(1000)
}
