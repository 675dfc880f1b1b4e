//! Salts for signing.
//!
//! The Python SDK derives the salt from the current millisecond only, so
//! calls in the same millisecond share a salt. Here a salt is the current
//! time in microseconds, bumped past the last one handed out: unique for
//! every call in the process, even thousands per millisecond, and still
//! increasing with time across restarts.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static LAST: AtomicI64 = AtomicI64::new(0);

/// A salt no other call in this process has used.
pub(crate) fn next_salt() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn salts_are_unique_across_threads() {
        let threads: Vec<_> =
            (0..4).map(|_| std::thread::spawn(|| (0..10_000).map(|_| next_salt()).collect::<Vec<_>>())).collect();
        let mut all = HashSet::new();
        for t in threads {
            for salt in t.join().unwrap() {
                assert!(all.insert(salt), "salt {salt} repeated");
            }
        }
        assert_eq!(all.len(), 40_000);
    }
}
