//! Latency histograms, error counts and the final report.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, from 1 µs to 60 s, with 3
/// significant digits.
const MAX_LATENCY_US: u64 = 60_000_000;

/// What one connection (or the whole run, after merging) observed.
///
/// In an open-loop run three things are kept per answered quest (see
/// [`crate::driver`] for how they are split):
///
/// - `latency_us`: what the server cost the quest: its round trip plus any
///   wait for a free slot that the server's earlier answers caused.
/// - `from_schedule_us`: answer time minus scheduled time, counting the
///   harness's own lateness too (what the harness reported before it split
///   the two; kept to show how much the split matters).
/// - `send_lag_us`: how late the harness itself sent the quest, against
///   when it could have (timer granularity, a busy or starved runtime).
///
/// In a closed-loop run only `latency_us` is kept.
#[derive(Debug, Clone)]
pub struct Recorder {
    latency_us: Histogram<u64>,
    from_schedule_us: Histogram<u64>,
    send_lag_us: Histogram<u64>,
    /// Error answers by code; transport and protocol failures use the
    /// negative pseudo-codes in [`LocalError`].
    pub errors: BTreeMap<i64, u64>,
}

/// Failures that are not server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalError {
    /// The connection failed or closed.
    Connection = -1,
    /// An answer could not be decoded, or came for the wrong seq.
    Protocol = -2,
}

/// Three significant digits, growing with the largest value recorded (up
/// to `MAX_LATENCY_US`): every connection keeps three of these, and with the
/// full range allocated up front the harness held about 850 KB a connection
/// (4.3 GB at 5,000 connections).
fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("valid histogram precision")
}

fn record_us(histogram: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, MAX_LATENCY_US);
    // In bounds by construction.
    let _ = histogram.record(us);
}

fn summary(h: &Histogram<u64>) -> Latency {
    Latency {
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            latency_us: histogram(),
            from_schedule_us: histogram(),
            send_lag_us: histogram(),
            errors: BTreeMap::new(),
        }
    }
}

impl Recorder {
    /// Records one answered request (success or server error).
    pub fn record(&mut self, latency: Duration) {
        record_us(&mut self.latency_us, latency);
    }

    /// Open loop: records one answered request's latency counted from its
    /// scheduled time, the harness's own lateness included.
    pub fn record_from_schedule(&mut self, latency: Duration) {
        record_us(&mut self.from_schedule_us, latency);
    }

    /// Open loop: records how late the harness sent one quest, against the
    /// time it could have sent it.
    pub fn record_send_lag(&mut self, lag: Duration) {
        record_us(&mut self.send_lag_us, lag);
    }

    /// Moves everything recorded so far out, leaving this one empty.
    pub fn take(&mut self) -> Self {
        std::mem::take(self)
    }

    /// Counts an error answer or local failure.
    pub fn error(&mut self, code: i64) {
        *self.errors.entry(code).or_default() += 1;
    }

    /// Adds another recorder's observations.
    pub fn merge(&mut self, other: &Self) {
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.from_schedule_us.add(&other.from_schedule_us);
        let _ = self.send_lag_us.add(&other.send_lag_us);
        for (code, n) in &other.errors {
            *self.errors.entry(*code).or_default() += n;
        }
    }

    /// Requests that got an answer.
    pub fn answered(&self) -> u64 {
        self.latency_us.len()
    }

    /// The latency at `quantile` (0..=1), in microseconds.
    pub fn quantile_us(&self, quantile: f64) -> u64 {
        self.latency_us.value_at_quantile(quantile)
    }

    /// The latency summary (what [`Report::latency_us`] holds).
    pub fn latency(&self) -> Latency {
        summary(&self.latency_us)
    }

    /// Open loop: the harness's send lag; `None` for a closed-loop run.
    pub fn send_lag(&self) -> Option<SendLag> {
        let h = &self.send_lag_us;
        if h.is_empty() {
            return None;
        }
        let late = h.count_between(LATE_SEND_US + 1, MAX_LATENCY_US);
        Some(SendLag {
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
            late_share: late as f64 / h.len() as f64,
        })
    }

    /// Summarises the run.
    pub fn report(&self, scenario: &str, elapsed: Duration, connections: usize, pipeline: usize) -> Report {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let requests = self.answered();
        Report {
            scenario: scenario.to_owned(),
            connections,
            pipeline,
            requests,
            elapsed_secs: secs,
            rate: requests as f64 / secs,
            latency_us: self.latency(),
            errors: self.errors.iter().map(|(code, n)| (code.to_string(), *n)).collect(),
            from_schedule_us: (!self.from_schedule_us.is_empty()).then(|| summary(&self.from_schedule_us)),
            send_lag: self.send_lag(),
            harness: None,
            probe: None,
            warnings: Vec::new(),
            warmup_secs: 0.0,
        }
    }
}

/// A send later than this (µs) counts as late in [`SendLag::late_share`]:
/// tokio's timers fire on whole milliseconds, so up to 1 ms is expected.
pub const LATE_SEND_US: u64 = 1_000;

/// Open loop: how late the harness sent its quests, in microseconds,
/// against when it could have sent them. Not charged to the server.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SendLag {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
    /// Share of quests sent more than [`LATE_SEND_US`] late.
    pub late_share: f64,
}

/// What the harness process itself used during the run (Linux `/proc`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HarnessUse {
    /// CPU used, in cores (user + system time over wall time).
    pub cores: f64,
    /// The runtime's worker threads.
    pub worker_threads: usize,
    /// CPUs this machine has.
    pub cpus: usize,
    /// Mean time a harness thread waited for a CPU each time it became
    /// runnable (run-queue wait / time slices, from `schedstat`), µs.
    pub runqueue_wait_per_wakeup_us: Option<f64>,
}

/// The independent probe's view of the same run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProbeSummary {
    /// Time between the probe's quests.
    pub interval_ms: f64,
    /// Quests answered.
    pub requests: u64,
    /// Round-trip latency percentiles, µs.
    pub latency_us: Latency,
    /// Error answers and failures by code.
    pub errors: BTreeMap<String, u64>,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// The final report of a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// What ran (e.g. `op addroommember`).
    pub scenario: String,
    /// Connections used.
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Requests answered (successfully or with an error answer).
    pub requests: u64,
    /// Measured time.
    pub elapsed_secs: f64,
    /// Answered requests per second.
    pub rate: f64,
    /// Latency percentiles.
    pub latency_us: Latency,
    /// Errors by code (`-1` connection, `-2` protocol).
    pub errors: BTreeMap<String, u64>,
    /// Open loop: latency counted from the schedule, the harness's own
    /// lateness included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_schedule_us: Option<Latency>,
    /// Open loop: how late the harness sent, not charged to the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag: Option<SendLag>,
    /// The harness's own CPU use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub harness: Option<HarnessUse>,
    /// The independent probe (`--probe`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeSummary>,
    /// Reasons not to trust the figures (e.g. the harness was saturated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Sent before the measured time and not recorded (`--warmup`).
    #[serde(skip_serializing_if = "is_zero")]
    pub warmup_secs: f64,
}

fn is_zero(secs: &f64) -> bool {
    *secs == 0.0
}

impl Report {
    /// Error counts whose code is not in `allowed`.
    pub fn unexpected_errors(&self, allowed: &[i64]) -> u64 {
        self.errors
            .iter()
            .filter(|(code, _)| code.parse::<i64>().map_or(true, |c| !allowed.contains(&c)))
            .map(|(_, n)| n)
            .sum()
    }

    /// A human-readable summary.
    pub fn to_text(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let l = &self.latency_us;
        let mut out = format!(
            "{}: {} connections x {} in flight\n  requests {}  in {:.2} s  =  {:.0} req/s\n  latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\n",
            self.scenario,
            self.connections,
            self.pipeline,
            self.requests,
            self.elapsed_secs,
            self.rate,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
        );
        if self.warmup_secs > 0.0 {
            out.push_str(&format!("  (after a warm-up of {:.1} s, sent but not recorded)\n", self.warmup_secs));
        }
        if self.errors.is_empty() {
            out.push_str("  errors none\n");
        } else {
            let list: Vec<String> = self.errors.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            out.push_str(&format!("  errors by code  {}\n", list.join(", ")));
        }
        if let Some(lag) = &self.send_lag {
            out.push_str(&format!(
                "  harness send lag ms (not charged to the server)  p50 {:.3}  p99 {:.3}  max {:.3}  later than {} ms: {:.1}%\n",
                ms(lag.p50),
                ms(lag.p99),
                ms(lag.max),
                LATE_SEND_US / 1000,
                lag.late_share * 100.0
            ));
        }
        if let Some(s) = &self.from_schedule_us {
            out.push_str(&format!(
                "  counted from the schedule, harness lag included, ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}\n",
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                ms(s.max)
            ));
        }
        if let Some(h) = &self.harness {
            out.push_str(&format!(
                "  harness CPU {:.2} cores ({} worker threads, {} CPUs)",
                h.cores, h.worker_threads, h.cpus
            ));
            if let Some(wait) = h.runqueue_wait_per_wakeup_us {
                out.push_str(&format!("; waited {wait:.0} µs for a CPU per wake-up"));
            }
            out.push('\n');
        }
        if let Some(p) = &self.probe {
            let pl = &p.latency_us;
            out.push_str(&format!(
                "  probe (1 connection, 1 quest at a time, every {} ms, own thread, blocking I/O): {} answered\n  probe latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
                p.interval_ms,
                p.requests,
                ms(pl.p50),
                ms(pl.p90),
                ms(pl.p99),
                ms(pl.max)
            ));
            if pl.p99 > 0 {
                out.push_str(&format!("   (harness p99 / probe p99 = {:.2})", l.p99 as f64 / pl.p99 as f64));
            }
            out.push('\n');
            if !p.errors.is_empty() {
                let list: Vec<String> = p.errors.iter().map(|(c, n)| format!("{c}: {n}")).collect();
                out.push_str(&format!("  probe errors by code  {}\n", list.join(", ")));
            }
        }
        for warning in &self.warnings {
            out.push_str(&format!("  WARNING: {warning}\n"));
        }
        out
    }

    /// Fills [`Report::warnings`]: says when the harness, not the server,
    /// was the limit, and when the harness and the probe disagree.
    pub fn judge(&mut self) {
        let mut warnings = Vec::new();
        if let Some(h) = &self.harness {
            let usable = h.worker_threads.min(h.cpus).max(1) as f64;
            if h.cores >= 0.85 * usable {
                warnings.push(format!(
                    "the harness is saturated: it used {:.2} of the {usable} cores its runtime can use; its latencies include its own queueing",
                    h.cores
                ));
            }
            if let Some(wait) = h.runqueue_wait_per_wakeup_us {
                if wait >= 200.0 {
                    warnings.push(format!(
                        "the harness is starved of CPU: its threads waited {wait:.0} µs for a core each time they woke (other processes share the cores); every latency it measures includes such waits"
                    ));
                }
            }
        }
        if let Some(lag) = &self.send_lag {
            if lag.late_share >= 0.01 && lag.p99 > 2 * LATE_SEND_US {
                warnings.push(format!(
                    "the harness is saturated: {:.1}% of its quests left more than {} ms after they could have (p99 {:.1} ms); the offered load was burstier than the schedule, though the lag itself is not counted as latency",
                    lag.late_share * 100.0,
                    LATE_SEND_US / 1000,
                    lag.p99 as f64 / 1000.0
                ));
            }
        }
        if let Some(p) = &self.probe {
            let (ours, theirs) = (self.latency_us.p99, p.latency_us.p99);
            if p.requests >= 100 && theirs > 0 && ours > 2 * theirs {
                warnings.push(format!(
                    "the harness's p99 ({:.3} ms) is more than twice the probe's ({:.3} ms): either the harness's own receive path adds the difference (see the lines above) or the server serves the probe's lone connection faster than many busy ones",
                    ours as f64 / 1000.0,
                    theirs as f64 / 1000.0
                ));
            }
        }
        self.warnings = warnings;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut r = Recorder::default();
        for us in 1..=10_000u64 {
            r.record(Duration::from_micros(us));
        }
        let within = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.002 + 1.0;
        assert!(within(r.quantile_us(0.5), 5_000), "{}", r.quantile_us(0.5));
        assert!(within(r.quantile_us(0.9), 9_000));
        assert!(within(r.quantile_us(0.99), 9_900));
        assert!(within(r.quantile_us(0.999), 9_990));
        let report = r.report("t", Duration::from_secs(2), 1, 1);
        assert_eq!(report.requests, 10_000);
        assert!((report.rate - 5_000.0).abs() < 1e-6);
        assert!(within(report.latency_us.max, 10_000));
        assert!((report.latency_us.mean - 5_000.5).abs() < 10.0);
    }

    #[test]
    fn merging_adds_counts_and_errors() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        a.record(Duration::from_micros(100));
        b.record(Duration::from_micros(300));
        b.record(Duration::from_micros(300));
        a.error(200006);
        b.error(200006);
        b.error(LocalError::Connection as i64);
        a.merge(&b);
        assert_eq!(a.answered(), 3);
        assert_eq!(a.errors[&200006], 2);
        assert_eq!(a.errors[&-1], 1);
        let report = a.report("t", Duration::from_secs(1), 1, 1);
        assert_eq!(report.unexpected_errors(&[]), 3);
        assert_eq!(report.unexpected_errors(&[200006]), 1);
    }

    #[test]
    fn extreme_latencies_are_clamped_not_lost() {
        let mut r = Recorder::default();
        r.record(Duration::ZERO);
        r.record(Duration::from_secs(3600));
        assert_eq!(r.answered(), 2);
        assert!(r.quantile_us(1.0) >= MAX_LATENCY_US - MAX_LATENCY_US / 1000);
    }
}
