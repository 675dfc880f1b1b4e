//! The `soak` scenario: a realistic mix at a fixed rate for a long time,
//! a line every report interval (rate, p99, server RSS, data-dir size), and
//! a failed run when the server's memory or disk keeps growing after
//! warm-up.
//!
//! # The bounds
//!
//! At the end of warm-up the soak takes the server's RSS and the data
//! directory's size as baselines. From then on, a report whose RSS exceeds
//! the baseline by more than `max_rss_growth`, or whose data directory
//! exceeds its baseline by more than `max_disk_growth`, stops the run and
//! fails it. Warm-up has to outlast what legitimately fills up (the replay
//! cache holds `auth.time_window_secs`, 300 s by default, of quests; a
//! mix that adds and removes members over a small id space reaches its
//! steady membership count), and the disk bound has to allow for the log
//! growing to `storage.snapshot_after_bytes` (64 MiB by default) before it is
//! folded into a snapshot. docs/performance.md gives the defaults and why.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::driver::{self, LoadConfig};
use crate::scenarios::rss_bytes;
use crate::stats::{Recorder, Report};
use crate::workload::Workload;

/// The mix a soak drives unless told otherwise: adds and removes balance,
/// so over a small id space the membership count levels off.
pub const DEFAULT_MIX: &str = "addroommember=20,delroommember=20,getroomcount=20,isbanofroom=10,getroominfo=10,setroominfo=5,addroomban=5,getroommembers=5,addroommembers=5";

/// What to watch and where the bounds are.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    /// A line every this long.
    pub every: Duration,
    /// No bound is checked before this.
    pub warmup: Duration,
    /// RSS may grow this much past its value at the end of warm-up, bytes.
    pub max_rss_growth: u64,
    /// The data directory may grow this much past its size at the end of
    /// warm-up, bytes.
    pub max_disk_growth: u64,
    /// Read RSS from `/proc/<pid>/status`.
    pub server_pid: Option<u32>,
    /// Or from `process_resident_memory_bytes` at this Prometheus URL.
    pub metrics_url: Option<String>,
    /// The server's data directory.
    pub data_dir: Option<PathBuf>,
}

/// One line of a soak.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SoakLine {
    /// Seconds since the start.
    pub at_secs: f64,
    /// Answers per second over the last interval.
    pub rate: f64,
    /// p99 over the last interval, µs.
    pub p99_us: u64,
    /// Error answers and failures over the last interval.
    pub errors: u64,
    /// Server RSS, bytes.
    pub rss: Option<u64>,
    /// Data directory size, bytes.
    pub disk: Option<u64>,
}

impl SoakLine {
    /// The line as printed.
    pub fn to_text(&self) -> String {
        let mib = |b: Option<u64>| b.map_or("-".to_string(), |b| format!("{:.1} MiB", b as f64 / 1048576.0));
        format!(
            "{:>7.0} s  {:>8.0} req/s  p99 {:>8.3} ms  errors {:>4}  server RSS {:>10}  data dir {:>10}",
            self.at_secs,
            self.rate,
            self.p99_us as f64 / 1000.0,
            self.errors,
            mib(self.rss),
            mib(self.disk)
        )
    }
}

/// What a soak ended with.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Every line printed.
    pub lines: Vec<SoakLine>,
    /// RSS and data-dir size at the end of warm-up.
    pub baseline: Option<(Option<u64>, Option<u64>)>,
    /// Why the run failed, if it did.
    pub failure: Option<String>,
    /// The whole run, as for `op` and `mix`.
    pub total: Report,
}

/// Compares one reading with the baseline; the reason to fail, if any.
pub fn over_bound(plan: &SoakPlan, baseline: (Option<u64>, Option<u64>), line: &SoakLine) -> Option<String> {
    let mib = |b: u64| b as f64 / 1048576.0;
    if let (Some(base), Some(now)) = (baseline.0, line.rss) {
        if now > base.saturating_add(plan.max_rss_growth) {
            return Some(format!(
                "server RSS grew from {:.1} MiB at the end of warm-up to {:.1} MiB at {:.0} s, more than the bound of {:.1} MiB",
                mib(base),
                mib(now),
                line.at_secs,
                mib(plan.max_rss_growth)
            ));
        }
    }
    if let (Some(base), Some(now)) = (baseline.1, line.disk) {
        if now > base.saturating_add(plan.max_disk_growth) {
            return Some(format!(
                "the data directory grew from {:.1} MiB at the end of warm-up to {:.1} MiB at {:.0} s, more than the bound of {:.1} MiB",
                mib(base),
                mib(now),
                line.at_secs,
                mib(plan.max_disk_growth)
            ));
        }
    }
    None
}

/// Runs a soak; `config.stop` is its duration and `config.rate` its rate.
/// `print` gets every line as it is made.
pub async fn soak(
    config: &LoadConfig,
    workload: Arc<Workload>,
    plan: &SoakPlan,
    mut print: impl FnMut(&SoakLine),
) -> SoakReport {
    let live: driver::Live = Arc::new(Mutex::new(Recorder::default()));
    let cancel = Arc::new(AtomicBool::new(false));
    let config = LoadConfig { live: Some(live.clone()), cancel: Some(cancel.clone()), ..config.clone() };
    let (connections, pipeline) = (config.connections, config.pipeline);
    let progress = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let load = tokio::spawn(async move { driver::run(&config, workload, progress).await });
    tokio::pin!(load);
    let mut tick = tokio::time::interval_at(started + plan.every, plan.every);
    let mut last = started;
    let mut lines = Vec::new();
    let mut baseline = None;
    let mut failure = None;
    let (recorder, elapsed) = loop {
        tokio::select! {
            done = &mut load => break done.unwrap_or_else(|_| (Recorder::default(), started.elapsed())),
            _ = tick.tick() => {}
        }
        let window = live.lock().unwrap_or_else(|e| e.into_inner()).take();
        let now = Instant::now();
        let line = SoakLine {
            at_secs: now.duration_since(started).as_secs_f64(),
            rate: window.answered() as f64 / now.duration_since(last).as_secs_f64().max(1e-9),
            p99_us: if window.answered() > 0 { window.quantile_us(0.99) } else { 0 },
            errors: window.errors.values().sum(),
            rss: read_rss(plan).await,
            disk: read_disk(plan).await,
        };
        last = now;
        print(&line);
        if failure.is_none() {
            match baseline {
                None if now.duration_since(started) >= plan.warmup => baseline = Some((line.rss, line.disk)),
                Some(base) => {
                    failure = over_bound(plan, base, &line);
                    if failure.is_some() {
                        cancel.store(true, Ordering::Relaxed);
                    }
                }
                None => {}
            }
        }
        lines.push(line);
    };
    SoakReport { lines, baseline, failure, total: recorder.report("soak", elapsed, connections, pipeline) }
}

async fn read_rss(plan: &SoakPlan) -> Option<u64> {
    if let Some(pid) = plan.server_pid {
        return rss_bytes(pid);
    }
    let url = plan.metrics_url.clone()?;
    tokio::task::spawn_blocking(move || rss_from_metrics(&url)).await.ok().flatten()
}

async fn read_disk(plan: &SoakPlan) -> Option<u64> {
    let dir = plan.data_dir.clone()?;
    tokio::task::spawn_blocking(move || dir_size(&dir)).await.ok().flatten()
}

/// Total size of the files under `dir`, bytes (`None` if it cannot be read).
pub fn dir_size(dir: &Path) -> Option<u64> {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    // Bounded by the directory tree (no symlinks are followed).
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Some(total)
}

/// Reads `process_resident_memory_bytes` from a Prometheus text endpoint
/// (`http://host:port/path`, plain HTTP), with short timeouts.
pub fn rss_from_metrics(url: &str) -> Option<u64> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/"), |(h, p)| (h, p));
    let addr: SocketAddr = host.parse().ok()?;
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.take(16 << 20).read_to_string(&mut body).ok()?;
    parse_rss_metric(&body)
}

/// Finds `process_resident_memory_bytes` in Prometheus text.
pub fn parse_rss_metric(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix("process_resident_memory_bytes ")?;
        value.trim().parse::<f64>().ok().map(|v| v as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SoakPlan {
        SoakPlan {
            every: Duration::from_secs(10),
            warmup: Duration::from_secs(60),
            max_rss_growth: 10 << 20,
            max_disk_growth: 100 << 20,
            server_pid: None,
            metrics_url: None,
            data_dir: None,
        }
    }

    fn line(rss: u64, disk: u64) -> SoakLine {
        SoakLine { at_secs: 100.0, rate: 1.0, p99_us: 1, errors: 0, rss: Some(rss), disk: Some(disk) }
    }

    #[test]
    fn bounds_apply_to_growth_past_the_baseline() {
        let base = (Some(50 << 20), Some(200 << 20));
        assert_eq!(over_bound(&plan(), base, &line(60 << 20, 300 << 20)), None);
        assert!(over_bound(&plan(), base, &line((60 << 20) + 1, 0)).unwrap().contains("RSS"));
        assert!(over_bound(&plan(), base, &line(0, (300 << 20) + 1)).unwrap().contains("data directory"));
        // Nothing to compare: no failure.
        assert_eq!(over_bound(&plan(), (None, None), &line(u64::MAX, u64::MAX)), None);
    }

    #[test]
    fn the_rss_metric_is_found_in_prometheus_text() {
        let text = "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
                    # TYPE process_resident_memory_bytes gauge\n\
                    process_resident_memory_bytes 12345678\n\
                    process_virtual_memory_bytes 99\n";
        assert_eq!(parse_rss_metric(text), Some(12_345_678));
        assert_eq!(parse_rss_metric("process_resident_memory_bytes 1.5e6\n"), Some(1_500_000));
        assert_eq!(parse_rss_metric("nothing\n"), None);
    }

    #[test]
    fn directory_sizes_add_up_files_below() {
        let dir = std::env::temp_dir().join(format!("rtm-soak-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.join("sub/b"), vec![0u8; 24]).unwrap();
        assert_eq!(dir_size(&dir), Some(1024));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(dir_size(&dir), None);
    }
}
