//! Snapshots: the whole state as a list of mutations that rebuild it.
//!
//! `snapshot-G` holds the state as of some moment after log generation `G`
//! began; recovery loads it and replays `wal-G` and later on top. Every
//! mutation sets values rather than adjusting them, so replaying records the
//! snapshot already reflects changes nothing (a "fuzzy" snapshot needs no
//! pause). It is written to a temporary file, synced, and renamed into
//! place, so a crash never leaves half a snapshot.

use std::io::Write;
use std::path::Path;

use super::Persisted;
use super::{list, snapshot_path, sync_dir, wal_path, Kind};

/// Writes `snapshot-generation` from `state`, then deletes the log files and
/// snapshots it makes obsolete. Does nothing once the state is gone.
pub(crate) fn write(dir: &Path, generation: u64, state: &dyn Persisted) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    let Some(mutations) = state.export() else { return Ok(()) };
    let mut bytes = Vec::new();
    let mut records = 0usize;
    for mutation in mutations {
        super::record::encode(&mutation, &mut bytes);
        records += 1;
    }
    let tmp = dir.join(format!("snapshot-{generation:020}.tmp"));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, snapshot_path(dir, generation))?;
    sync_dir(dir)?;
    for (kind, old) in list(dir)? {
        if old < generation {
            let path = match kind {
                Kind::Wal => wal_path(dir, old),
                Kind::Snapshot => snapshot_path(dir, old),
            };
            std::fs::remove_file(path)?;
        }
    }
    tracing::info!(generation, records, bytes = bytes.len(), elapsed = ?started.elapsed(), "snapshot written");
    Ok(())
}
