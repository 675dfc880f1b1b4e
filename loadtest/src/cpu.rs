//! The harness's own CPU use, from Linux `/proc`, so a report can say when
//! the harness rather than the server was the limit.
//!
//! Two readings, each a difference between a sample at the start of a run
//! and one at its end:
//!
//! - CPU time (`/proc/self/stat`, user + system, in clock ticks of 10 ms):
//!   how many cores the harness kept busy.
//! - Run-queue wait (`/proc/self/task/*/schedstat`, in ns, with the number
//!   of time slices): how long its threads sat runnable but without a core.
//!   Divided by the time slices, this is the mean delay between a thread
//!   becoming runnable (an answer arrived, a timer fired) and it running,
//!   which every latency the harness measures includes.
//!
//! On other systems, or without schedstat, the readings are `None`.

use std::time::{Duration, Instant};

use crate::stats::HarnessUse;

/// Clock ticks per second of `/proc/self/stat` times. `sysconf(_SC_CLK_TCK)`
/// is 100 on every Linux architecture the project runs on; reading it would
/// need `unsafe` FFI, which the workspace forbids.
const TICKS_PER_SEC: f64 = 100.0;

/// One reading of the process's counters.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    at: Instant,
    cpu_ticks: Option<u64>,
    /// Summed over the live threads: (run-queue wait ns, time slices).
    wait: Option<(u64, u64)>,
}

impl Sample {
    /// Reads the counters now.
    pub fn now() -> Self {
        Self { at: Instant::now(), cpu_ticks: cpu_ticks(), wait: runqueue_wait() }
    }

    /// What the harness used from `self` to `later`.
    pub fn usage_until(&self, later: &Sample, worker_threads: usize) -> HarnessUse {
        let wall = later.at.saturating_duration_since(self.at).max(Duration::from_millis(1));
        let cores = match (self.cpu_ticks, later.cpu_ticks) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / TICKS_PER_SEC / wall.as_secs_f64(),
            _ => 0.0,
        };
        let runqueue_wait_per_wakeup_us = match (self.wait, later.wait) {
            // Threads that exited in between drop out of the sum; the
            // runtime's threads live for the whole run, so the difference
            // is theirs.
            (Some((w0, s0)), Some((w1, s1))) if s1 > s0 => Some(w1.saturating_sub(w0) as f64 / (s1 - s0) as f64 / 1e3),
            _ => None,
        };
        HarnessUse {
            cores,
            worker_threads,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            runqueue_wait_per_wakeup_us,
        }
    }
}

/// User + system time of the whole process, in clock ticks.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat_ticks(&stat)
}

/// Fields 14 and 15 (utime, stime) of a `stat` line; the command name
/// (field 2) is in parentheses and may hold spaces, so count after it.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Run-queue wait (ns) and time slices, summed over the process's threads.
fn runqueue_wait() -> Option<(u64, u64)> {
    let mut wait = 0u64;
    let mut slices = 0u64;
    let mut any = false;
    // A process has a bounded number of threads; the loop ends with them.
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else { continue };
        let mut fields = text.split_whitespace().skip(1).map(str::parse::<u64>);
        if let (Some(Ok(w)), Some(Ok(s))) = (fields.next(), fields.next()) {
            wait += w;
            slices += s;
            any = true;
        }
    }
    any.then_some((wait, slices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_read_after_the_command_name() {
        let line = "4242 (rtm loadtest) S 1 4242 4242 0 -1 4194304 300 0 0 0 125 37 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_stat_ticks(line), Some(162));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn a_busy_thread_shows_up_as_cpu_use() {
        let before = Sample::now();
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let used = before.usage_until(&Sample::now(), 1);
        if before.cpu_ticks.is_some() {
            // Loose: other processes may share the cores.
            assert!(used.cores > 0.05 && used.cores < 4.0, "{used:?}");
        }
    }
}
