//! Replay detection for signed quests.
//!
//! A quest may only be used while its `ts` lies within the time window, so
//! the cache only has to remember quests for as long as their `ts` stays
//! acceptable. Entries are grouped by `ts` second in a ring of buckets; a
//! bucket is reused (and so forgotten) once its second has left the window.
//!
//! Each entry is a 64-bit keyed digest of the method name and the whole
//! payload (which holds pid, sign, salt, ts and the parameters) plus the id
//! of the connection that first sent it: about 16 bytes of key and value, or
//! roughly 24–40 bytes with hash-table overhead.
//!
//! The cache is bounded. When a shard reaches its share of the capacity it
//! forgets its oldest second and raises a *horizon*: from then on, quests
//! whose `ts` is at or before that second are refused as outside the window
//! (200008). A replay is therefore never accepted; under extreme load the
//! window for old timestamps shrinks instead, which clients signing with the
//! current time do not notice.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 64;

/// The verdict on one quest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// First time seen (now remembered), or seen before on the same connection.
    Fresh,
    /// Seen before on another connection.
    Replay,
    /// `ts` is outside the (possibly shrunk) window.
    OutsideWindow,
}

/// Passes the already random digest through as the hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default)]
struct Bucket {
    ts: i64,
    /// digest → id of the connection that first sent it.
    seen: HashMap<u64, u32, BuildHasherDefault<DigestHasher>>,
}

struct Shard {
    buckets: Vec<Bucket>,
    len: usize,
}

pub(crate) struct ReplayCache {
    window: i64,
    shard_capacity: usize,
    shards: Box<[Mutex<Shard>]>,
    /// Quests with `ts <= horizon` are refused; raised when capacity forces
    /// the cache to forget a second early.
    horizon: AtomicI64,
    /// Key of the quest digest, chosen at random per process.
    seed: u64,
    /// When the "cache full" warning was last logged.
    last_warning: Mutex<Option<Instant>>,
}

impl ReplayCache {
    /// A cache for a window of ±`window_secs`, remembering at most about
    /// `capacity` quests.
    pub(crate) fn new(window_secs: u64, capacity: usize) -> Self {
        let window = window_secs as i64;
        let ring = (2 * window + 2) as usize;
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    buckets: (0..ring).map(|_| Bucket { ts: i64::MIN, ..Bucket::default() }).collect(),
                    len: 0,
                })
            })
            .collect();
        Self {
            window,
            shard_capacity: (capacity / SHARDS).max(1),
            shards,
            horizon: AtomicI64::new(i64::MIN),
            seed: std::hash::RandomState::new().hash_one(0x5eed_u64),
            last_warning: Mutex::new(None),
        }
    }

    /// The digest that identifies a quest: a fast 64-bit keyed hash of the
    /// method and the payload. A collision can only make the server refuse
    /// a genuine quest as a replay (with odds of about n / 2^64 against an
    /// n-entry cache); it can never let a replay through.
    pub(crate) fn digest(&self, method: &[u8], payload: &[u8]) -> u64 {
        let h = fast_hash(self.seed, method);
        fast_hash(h, payload)
    }

    /// Checks `ts` against the window at `now` and remembers the quest.
    pub(crate) fn check(&self, ts: i64, now: i64, digest: u64, connection: u32) -> Verdict {
        if ts < now - self.window || ts > now + self.window || ts <= self.horizon.load(Ordering::Relaxed) {
            return Verdict::OutsideWindow;
        }
        let ring = (2 * self.window + 2) as usize;
        let slot = ts.rem_euclid(ring as i64) as usize;
        let mut shard = self.shards[(digest >> 58) as usize % SHARDS].lock().unwrap_or_else(|e| e.into_inner());
        let shard = &mut *shard;
        if shard.buckets[slot].ts != ts {
            // Size the new second like the one before it, so that under
            // steady load its table does not grow step by step.
            let previous = &shard.buckets[(slot + ring - 1) % ring];
            let expected = if previous.ts == ts - 1 { previous.seen.len() } else { 0 };
            let bucket = &mut shard.buckets[slot];
            // Whatever this slot held is for a second that left the window.
            shard.len -= bucket.seen.len();
            bucket.seen = HashMap::with_capacity_and_hasher(expected, BuildHasherDefault::default());
            bucket.ts = ts;
        }
        let bucket = &mut shard.buckets[slot];
        match bucket.seen.get(&digest) {
            Some(&first) if first == connection => return Verdict::Fresh,
            Some(_) => return Verdict::Replay,
            None => {}
        }
        bucket.seen.insert(digest, connection);
        shard.len += 1;
        if shard.len > self.shard_capacity {
            self.evict_oldest(shard, ts);
        }
        Verdict::Fresh
    }

    /// Forgets this shard's oldest second (never the one just written) and
    /// raises the horizon to it.
    fn evict_oldest(&self, shard: &mut Shard, keep: i64) {
        let oldest = shard.buckets.iter_mut().filter(|b| !b.seen.is_empty() && b.ts != keep).min_by_key(|b| b.ts);
        if let Some(bucket) = oldest {
            let raised = self.horizon.fetch_max(bucket.ts, Ordering::Relaxed) < bucket.ts;
            shard.len -= bucket.seen.len();
            bucket.seen = HashMap::default();
            if raised {
                self.warn_full(bucket.ts, keep);
            }
        }
    }

    /// Logs that the cache is full, at most once a minute.
    fn warn_full(&self, horizon: i64, now_ts: i64) {
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            tracing::warn!(
                horizon,
                covered_secs = now_ts - horizon,
                "replay cache full: quests signed more than covered_secs ago are refused with 200008 \
                 (raise auth.replay_cache_entries to cover more)"
            );
        }
    }

    /// Frees buckets whose second has left the window.
    pub(crate) fn sweep(&self, now: i64) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let shard = &mut *shard;
            for bucket in &mut shard.buckets {
                if !bucket.seen.is_empty() && bucket.ts < now - self.window {
                    shard.len -= bucket.seen.len();
                    bucket.seen = HashMap::default();
                }
            }
        }
    }

    /// Quests remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len).sum()
    }
}

/// A fast keyed 64-bit hash: 8 bytes at a time through a multiply-rotate
/// step, then a full avalanche (MurmurHash3's finaliser).
fn fast_hash(seed: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        h = (h ^ word).wrapping_mul(K).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_differ_for_any_change() {
        let cache = ReplayCache::new(300, 1 << 20);
        let base = cache.digest(b"addroommember", b"payload-0123456789");
        assert_eq!(base, cache.digest(b"addroommember", b"payload-0123456789"));
        assert_ne!(base, cache.digest(b"addroommember", b"payload-0123456788"));
        assert_ne!(base, cache.digest(b"delroommember", b"payload-0123456789"));
        assert_ne!(base, cache.digest(b"addroommember", b"payload-0123456789\0"));
        assert_ne!(cache.digest(b"", b""), cache.digest(b"", b"\0"));
        // Another process (another seed) digests differently.
        assert_ne!(base, ReplayCache::new(300, 1 << 20).digest(b"addroommember", b"payload-0123456789"));
    }

    #[test]
    fn same_connection_may_repeat_other_connections_may_not() {
        let cache = ReplayCache::new(300, 1 << 20);
        let d = cache.digest(b"m", b"payload");
        assert_eq!(cache.check(1000, 1000, d, 1), Verdict::Fresh);
        assert_eq!(cache.check(1000, 1000, d, 1), Verdict::Fresh);
        assert_eq!(cache.check(1000, 1001, d, 2), Verdict::Replay);
        let other = cache.digest(b"m", b"payload2");
        assert_eq!(cache.check(1000, 1000, other, 2), Verdict::Fresh);
    }

    #[test]
    fn the_window_is_enforced_both_ways() {
        let cache = ReplayCache::new(300, 1 << 20);
        assert_eq!(cache.check(700, 1000, 1, 1), Verdict::Fresh);
        assert_eq!(cache.check(699, 1000, 2, 1), Verdict::OutsideWindow);
        assert_eq!(cache.check(1300, 1000, 3, 1), Verdict::Fresh);
        assert_eq!(cache.check(1301, 1000, 4, 1), Verdict::OutsideWindow);
    }

    #[test]
    fn old_seconds_are_forgotten_when_their_slot_is_reused() {
        let cache = ReplayCache::new(10, 1 << 20);
        assert_eq!(cache.check(100, 100, 7, 1), Verdict::Fresh);
        // 22 seconds later the same slot serves ts 122: the old entry is gone,
        // and ts 100 itself is no longer acceptable.
        assert_eq!(cache.check(122, 122, 8, 1), Verdict::Fresh);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.check(100, 122, 7, 2), Verdict::OutsideWindow);
    }

    #[test]
    fn sweep_frees_expired_seconds() {
        let cache = ReplayCache::new(10, 1 << 20);
        for i in 0..100 {
            cache.check(100, 100, i << 58 | i, 1);
        }
        assert_eq!(cache.len(), 100);
        cache.sweep(105);
        assert_eq!(cache.len(), 100);
        cache.sweep(111);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_full_cache_shrinks_the_window_and_never_accepts_a_replay() {
        let cache = ReplayCache::new(300, SHARDS * 10);
        let shard_digest = |i: u64| i; // all in shard 0
        for i in 0..10 {
            assert_eq!(cache.check(1000, 1010, shard_digest(i), 1), Verdict::Fresh);
        }
        // The shard is full: writing at ts 1001 evicts second 1000.
        assert_eq!(cache.check(1001, 1010, shard_digest(100), 1), Verdict::Fresh);
        assert!(cache.len() <= 10);
        // A replay of a forgotten quest is refused by the horizon instead.
        assert_eq!(cache.check(1000, 1010, shard_digest(3), 2), Verdict::OutsideWindow);
        // Current quests are unaffected.
        assert_eq!(cache.check(1010, 1010, shard_digest(200), 1), Verdict::Fresh);
    }

    /// Resident memory of this process, from /proc (Linux only).
    fn rss_bytes() -> Option<usize> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * 4096)
    }

    /// Measures the memory cost per entry (`docs/api.md` quotes it). Ignored
    /// by default because it allocates a few hundred MB; run with
    /// `cargo test -p rtm-server --release -- --ignored replay_cache_memory --nocapture`.
    #[test]
    #[ignore]
    fn replay_cache_memory_per_entry() {
        let Some(before) = rss_bytes() else { return };
        let entries = 4_000_000u64;
        let cache = ReplayCache::new(300, entries as usize);
        let keys = std::hash::RandomState::new();
        for i in 0..entries {
            // Spread over 40 seconds, as 100k quests/s would.
            let digest = keys.hash_one(i);
            assert_eq!(cache.check(1_000 + (i / 100_000) as i64, 1_040, digest, 1), Verdict::Fresh);
        }
        let after = rss_bytes().unwrap();
        let per_entry = (after - before) as f64 / entries as f64;
        println!("replay cache: {} entries, {per_entry:.1} bytes each", cache.len());
        assert!(per_entry < 64.0, "{per_entry} bytes per entry");
    }
}
