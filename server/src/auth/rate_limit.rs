//! A token bucket per project.

use std::sync::Mutex;
use std::time::Instant;

pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `rate` quests per second with `burst` capacity (0 = one second's worth).
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        let burst = if burst == 0 { rate } else { burst };
        Self { rate: f64::from(rate), burst: f64::from(burst), bucket: Mutex::new((f64::from(burst), Instant::now())) }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_acquire(&self) -> bool {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> bool {
        let mut guard = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = &mut *guard;
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_the_burst_then_the_rate() {
        let limiter = RateLimiter::new(10, 5);
        let start = Instant::now();
        assert_eq!((0..10).filter(|_| limiter.try_acquire_at(start)).count(), 5);
        // 300 ms later, 3 more tokens.
        let later = start + Duration::from_millis(300);
        assert_eq!((0..10).filter(|_| limiter.try_acquire_at(later)).count(), 3);
    }
}
