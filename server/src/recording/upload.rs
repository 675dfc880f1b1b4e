//! Uploads of ended recordings to S3-compatible storage (`object_store`).
//!
//! When a recording with `storage: "s3"` ends, its slices and manifests are
//! listed in `<root>/.uploads/<sid>.json` (synced) and this task uploads
//! them, each under its root-relative name as the key. A file is deleted
//! locally only once the store has confirmed it; the job file goes when
//! every file is up. A store that fails leaves the rest where it is (the
//! local backup) and is retried with backoff, up to a minute apart, and
//! after a restart. Until its job file is gone a recording reports
//! `backuped`, then `uploaded`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::files;
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
        Ok((!stores.is_empty()).then(|| Self { root, stores, wake: Notify::new() }))
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
        let job = Job { pid, sid: sid.to_owned(), files };
        files::write_atomic(&self.job_path(sid), &serde_json::to_vec(&job).map_err(std::io::Error::other)?)?;
        self.wake.notify_one();
        Ok(())
    }

    /// Whether recording `sid` was queued (it ended with `storage: "s3"`).
    pub(crate) fn is_queued(&self, sid: &str) -> bool {
        self.job_path(sid).exists()
    }

    /// Uploads until `stop`; what is left waits on disk for the next start.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let all_done = match self.pass().await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "recording upload failed; the files stay local (backuped)");

                    false
                }
            };
            let wait = if all_done {
                backoff = Duration::from_secs(1);
                Duration::from_secs(5)
            } else {
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified(), if all_done => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Uploads every queued job, stopping at the first failure.
    async fn pass(&self) -> Result<(), String> {
        let dir = self.root.join(".uploads");
        let mut jobs = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().is_some_and(|e| e == "json") {
                        jobs.push(path);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        for job_path in jobs {
            let job: Job = match std::fs::read(&job_path).map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(job)) => job,
                _ => continue,
            };
            let Some(store) = self.stores.get(&job.pid) else {
                return Err(format!("project {} has no recording_s3 any more; {} waits", job.pid, job.sid));
            };
            for name in &job.files {
                let local = self.root.join(name);
                let bytes = match tokio::fs::read(&local).await {
                    Ok(bytes) => bytes,
                    // Uploaded and deleted by an earlier pass.
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
            tokio::fs::remove_file(&job_path).await.map_err(|e| e.to_string())?;
            tracing::info!(pid = job.pid, sid = job.sid, files = job.files.len(), "recording uploaded");
        }
        Ok(())
    }
}
