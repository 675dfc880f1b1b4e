//! Uploads of ended recordings to S3-compatible storage (`object_store`).
//!
//! Files of recordings with `storage: "s3"` are listed in job files under
//! `<root>/.uploads/` (synced), and this task uploads them, each under its
//! root-relative name as the key: a slice as soon as the recording has moved
//! on to the next one and saved that (`<sid>.s.<slice>.json`), and the rest
//! with the manifests when it ends (`<sid>.json`). A file is deleted
//! locally only once the store has confirmed it; a job file goes when every
//! file in it is up. A store that fails leaves the rest where it is (the
//! local backup) and is retried with backoff, up to a minute apart, and
//! after a restart; other projects' jobs go on meanwhile. Until its last
//! job file is gone a recording reports `backuped`, then `uploaded`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{files, lock};
use crate::config::{ProjectConfig, S3Config};

/// The longest wait between attempts on a failing store.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One ended recording's files still to upload.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    pid: i64,
    sid: String,
    /// Root-relative names: the keys in the bucket.
    files: Vec<String>,
}

/// The projects' buckets and the upload queue on disk.
pub(crate) struct Uploads {
    root: PathBuf,
    stores: HashMap<i64, Arc<dyn ObjectStore>>,
    wake: Notify,
    /// Job files on disk, by recording.
    pending: Mutex<HashMap<String, usize>>,
    /// Signalled whenever a job is done.
    done: Notify,
}

fn store(config: &S3Config) -> Result<Arc<dyn ObjectStore>, String> {
    let mut builder = AmazonS3Builder::from_env()
        .with_endpoint(&config.endpoint)
        .with_bucket_name(&config.bucket)
        .with_region(&config.region)
        // Retries are ours (with backoff, across restarts): fail fast here.
        .with_retry(RetryConfig { max_retries: 1, retry_timeout: Duration::from_secs(10), ..RetryConfig::default() })
        .with_client_options(
            // (These replace the builder's client options: allow_http goes here.)
            ClientOptions::new()
                .with_allow_http(config.endpoint.starts_with("http://"))
                .with_timeout(Duration::from_secs(30))
                .with_connect_timeout(Duration::from_secs(3)),
        );
    if !config.access_key_id.is_empty() {
        builder = builder.with_access_key_id(&config.access_key_id).with_secret_access_key(&config.secret_access_key);
    }
    builder.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>).map_err(|e| e.to_string())
}

impl Uploads {
    /// The buckets of the projects that have one; `None` when none has.
    pub(crate) fn new(root: PathBuf, projects: &[ProjectConfig]) -> Result<Option<Self>, String> {
        if projects.iter().any(|p| p.recording_s3.is_some()) {
            // The HTTP client under object_store (reqwest, rustls) needs a
            // process-wide crypto provider; ours is ring, as for TLS.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut stores = HashMap::new();
        for project in projects {
            if let Some(config) = &project.recording_s3 {
                stores.insert(
                    project.pid,
                    store(config).map_err(|e| format!("project {}: recording_s3: {e}", project.pid))?,
                );
            }
        }
        if stores.is_empty() {
            return Ok(None);
        }
        let uploads = Self { root, stores, wake: Notify::new(), pending: Mutex::default(), done: Notify::new() };
        // Jobs left by an earlier run are counted as they are on disk.
        for path in uploads.job_files().map_err(|e| format!("recording uploads: {e}"))? {
            if let Some(job) = read_job(&path) {
                *lock(&uploads.pending).entry(job.sid).or_default() += 1;
            }
        }
        Ok(Some(uploads))
    }

    /// Whether project `pid` has a bucket.
    pub(crate) fn has(&self, pid: i64) -> bool {
        self.stores.contains_key(&pid)
    }

    fn job_path(&self, sid: &str) -> PathBuf {
        self.root.join(".uploads").join(format!("{sid}.json"))
    }

    /// Queues an ended recording's files (durably) and wakes the task.
    pub(crate) fn queue(&self, pid: i64, sid: &str, files: Vec<String>) -> std::io::Result<()> {
        self.queue_job(self.job_path(sid), Job { pid, sid: sid.to_owned(), files })
    }

    /// Queues one finished slice of a running recording (`file`, its
    /// root-relative name); queuing it again is a no-op.
    pub(crate) fn queue_slice(&self, pid: i64, sid: &str, file: &str) -> std::io::Result<()> {
        let stem = file.rsplit('/').next().unwrap_or(file).trim_end_matches(".jsonl");
        let path = self.root.join(".uploads").join(format!("{sid}.s.{stem}.json"));
        self.queue_job(path, Job { pid, sid: sid.to_owned(), files: vec![file.to_owned()] })
    }

    fn queue_job(&self, path: PathBuf, job: Job) -> std::io::Result<()> {
        let new = !path.exists();
        // Counted before the file appears: the task may upload and count
        // it done as soon as it is there.
        if new {
            *lock(&self.pending).entry(job.sid.clone()).or_default() += 1;
        }
        let written = serde_json::to_vec(&job)
            .map_err(std::io::Error::other)
            .and_then(|bytes| files::write_atomic(&path, &bytes));
        if written.is_err() && new {
            let mut pending = lock(&self.pending);
            if let Some(n) = pending.get_mut(&job.sid) {
                *n = n.saturating_sub(1);
            }
            pending.retain(|_, n| *n > 0);
        }
        written?;
        self.wake.notify_one();
        Ok(())
    }

    /// Whether an ended recording `sid` had its files queued (its last job).
    pub(crate) fn is_queued(&self, sid: &str) -> bool {
        self.job_path(sid).exists()
    }

    /// Whether recording `sid` has files waiting to go up.
    pub(crate) fn is_pending(&self, sid: &str) -> bool {
        lock(&self.pending).get(sid).is_some_and(|n| *n > 0)
    }

    /// Waits until recording `sid` has no file waiting, at most `within`;
    /// whether it has none.
    pub(crate) async fn wait_done(&self, sid: &str, within: Duration) -> bool {
        let wait = async {
            loop {
                let done = self.done.notified();
                tokio::pin!(done);
                // Registered before the check, so a job done in between is not missed.
                done.as_mut().enable();
                if !self.is_pending(sid) {
                    return;
                }
                done.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }

    /// The job files, oldest first.
    fn job_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut jobs = Vec::new();
        match std::fs::read_dir(self.root.join(".uploads")) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().is_some_and(|e| e == "json") {
                        let modified = entry.metadata().and_then(|m| m.modified()).ok();
                        jobs.push((modified, path));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        jobs.sort();
        Ok(jobs.into_iter().map(|(_, path)| path).collect())
    }

    /// Uploads until `stop`; what is left waits on disk for the next start.
    /// A failing project backs off on its own: new jobs of other projects
    /// go up at once.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        // By project: when to try again, and the wait after that.
        let mut backoff: HashMap<i64, (tokio::time::Instant, Duration)> = HashMap::new();
        loop {
            let now = tokio::time::Instant::now();
            let resting: HashSet<i64> = backoff.iter().filter(|(_, (at, _))| *at > now).map(|(pid, _)| *pid).collect();
            let failed = self.pass(&resting).await;
            for pid in self.stores.keys() {
                if let Some(error) = failed.get(pid) {
                    let wait = backoff.get(pid).map_or(Duration::from_secs(1), |(_, wait)| *wait);
                    tracing::warn!(pid, error = %error, retry_in = ?wait, "recording upload failed; the files stay local (backuped)");
                    backoff.insert(*pid, (now + wait, (wait * 2).min(MAX_BACKOFF)));
                } else if !resting.contains(pid) {
                    backoff.remove(pid);
                }
            }
            // Jobs are looked for every 5 s too (a job queued before a wake was awaited).
            let next = backoff.values().map(|(at, _)| *at).min().unwrap_or(now + Duration::from_secs(5));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(next.min(now + Duration::from_secs(5))) => {}
            }
        }
    }

    /// Uploads every queued job of the projects not `resting`; returns the
    /// projects that failed, with their first error (their later jobs wait
    /// for the next try).
    async fn pass(&self, resting: &HashSet<i64>) -> HashMap<i64, String> {
        let mut failed: HashMap<i64, String> = HashMap::new();
        let jobs = match self.job_files() {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the recording upload jobs");
                return failed;
            }
        };
        for job_path in jobs {
            let Some(job) = read_job(&job_path) else { continue };
            if resting.contains(&job.pid) || failed.contains_key(&job.pid) {
                continue;
            }
            let uploaded = match self.upload(&job).await {
                Ok(()) => tokio::fs::remove_file(&job_path).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match uploaded {
                Ok(()) => {
                    {
                        let mut pending = lock(&self.pending);
                        if let Some(n) = pending.get_mut(&job.sid) {
                            *n = n.saturating_sub(1);
                        }
                        pending.retain(|_, n| *n > 0);
                    }
                    self.done.notify_waiters();
                    tracing::debug!(pid = job.pid, sid = job.sid, files = job.files.len(), "recording files uploaded");
                }
                Err(e) => {
                    failed.insert(job.pid, e);
                }
            }
        }
        failed
    }

    /// Uploads one job's files, deleting each locally once the store has it.
    async fn upload(&self, job: &Job) -> Result<(), String> {
        let Some(store) = self.stores.get(&job.pid) else {
            return Err(format!("project {} has no recording_s3 any more; {} waits", job.pid, job.sid));
        };
        for name in &job.files {
            let local = self.root.join(name);
            let bytes = match tokio::fs::read(&local).await {
                Ok(bytes) => bytes,
                // Uploaded and deleted by an earlier job or pass.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("{}: {e}", local.display())),
            };
            store
                .put(&ObjectPath::from(name.as_str()), PutPayload::from(bytes))
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            // Deleted only once the store has it.
            let _ = tokio::fs::remove_file(&local).await;
        }
        Ok(())
    }
}

impl Uploads {
    /// Project `pid`'s bucket (playback reads from it).
    pub(crate) fn store(&self, pid: i64) -> Option<Arc<dyn ObjectStore>> {
        self.stores.get(&pid).cloned()
    }
}

fn read_job(path: &std::path::Path) -> Option<Job> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok())
}
