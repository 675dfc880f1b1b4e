//! Latency histograms, error counts and the final report.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, from 1 µs to 60 s, with 3
/// significant digits.
const MAX_LATENCY_US: u64 = 60_000_000;

/// What one connection (or the whole run, after merging) observed.
#[derive(Debug, Clone)]
pub struct Recorder {
    latency_us: Histogram<u64>,
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

impl Default for Recorder {
    fn default() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds"),
            errors: BTreeMap::new(),
        }
    }
}

impl Recorder {
    /// Records one answered request (success or server error).
    pub fn record(&mut self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        // In bounds by construction.
        let _ = self.latency_us.record(us);
    }

    /// Counts an error answer or local failure.
    pub fn error(&mut self, code: i64) {
        *self.errors.entry(code).or_default() += 1;
    }

    /// Adds another recorder's observations.
    pub fn merge(&mut self, other: &Self) {
        let _ = self.latency_us.add(&other.latency_us);
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

    /// Summarises the run.
    pub fn report(&self, scenario: &str, elapsed: Duration, connections: usize, pipeline: usize) -> Report {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let requests = self.answered();
        let q = |x| self.quantile_us(x);
        Report {
            scenario: scenario.to_owned(),
            connections,
            pipeline,
            requests,
            elapsed_secs: secs,
            rate: requests as f64 / secs,
            latency_us: Latency {
                p50: q(0.50),
                p90: q(0.90),
                p99: q(0.99),
                p999: q(0.999),
                max: self.latency_us.max(),
                mean: self.latency_us.mean(),
            },
            errors: self.errors.iter().map(|(code, n)| (code.to_string(), *n)).collect(),
        }
    }
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
        if self.errors.is_empty() {
            out.push_str("  errors none\n");
        } else {
            let list: Vec<String> = self.errors.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            out.push_str(&format!("  errors by code  {}\n", list.join(", ")));
        }
        out
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
