//! A recording's files: per file set (a sender, or the whole room), JSON
//! Lines slices cut by time or size, and a manifest listing the slices.
//!
//! ```text
//! <root>/<pid>/<prefix>/<sid>_<tag>.manifest.json
//! <root>/<pid>/<prefix>/<sid>_<tag>_0001.jsonl        one message per line
//! ```
//!
//! `tag` is `mix` for a `mix` recording and `u<uid>` for a sender's set
//! (`events` for the room events of an `individual` recording that records
//! them; a `mix` recording has them among its messages).
//! Lines are appended and synced before the recording's progress names
//! their length, so after a crash a slice is cut back to that length and
//! the recording goes on from the next message: nothing twice, nothing lost.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::history::StoredMessage;
use crate::model::Body;

/// One slice of a file set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Slice {
    /// Relative to the storage root.
    pub(crate) file: String,
    /// When its first message was written, Unix milliseconds.
    pub(crate) start_time: i64,
    /// Bytes written and synced.
    pub(crate) bytes: u64,
    pub(crate) messages: u64,
}

/// A file set: what one manifest lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileSet {
    /// The sender; 0 for `mix`.
    pub(crate) uid: i64,
    pub(crate) slices: Vec<Slice>,
}

/// The manifest file's content.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) sid: String,
    pub(crate) pid: i64,
    pub(crate) rid: i64,
    /// The sender, or 0 for `mix` and for the `events` set.
    pub(crate) uid: i64,
    pub(crate) mixed_all_users: bool,
    /// The `events` set of an `individual` recording.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) events: bool,
    /// Whether the recording ended: no slice will grow any more.
    pub(crate) complete: bool,
    pub(crate) start_time: i64,
    /// When the recording ended (0 while it runs).
    pub(crate) end_time: i64,
    pub(crate) slices: Vec<Slice>,
}

/// One recorded message, as a line.
#[derive(Serialize, Deserialize)]
pub(crate) struct Line<'a> {
    /// Its id in the room's history.
    pub(crate) id: i64,
    pub(crate) from: i64,
    pub(crate) mtype: i64,
    pub(crate) mid: i64,
    /// Text messages.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub(crate) msg: Option<std::borrow::Cow<'a, str>>,
    /// Binary messages, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) binary: Option<String>,
    #[serde(borrow)]
    pub(crate) attrs: std::borrow::Cow<'a, str>,
    pub(crate) mtime: i64,
}

impl<'a> Line<'a> {
    pub(crate) fn of(row: &'a StoredMessage) -> Self {
        let (msg, binary) = match &row.body {
            Body::Text(text) => (Some(text.as_str().into()), None),
            Body::Binary(bytes) => (None, Some(STANDARD.encode(bytes))),
        };
        Line {
            id: row.id,
            from: row.from,
            mtype: row.mtype,
            mid: row.mid,
            msg,
            binary,
            attrs: row.attrs.as_str().into(),
            mtime: row.mtime,
        }
    }
}

/// The file set key of an `individual` recording's room events.
pub(crate) const EVENTS_SET: i64 = i64::MIN;

/// One room event, as a line (a recording with `events: true`).
#[derive(Serialize)]
pub(crate) struct EventLine<'a> {
    /// Its name (`member_joined`, …), as listeners get it.
    pub(crate) event: &'a str,
    /// The user it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) uid: Option<i64>,
    /// Unix milliseconds.
    pub(crate) time: i64,
    /// Its details, as listeners get them.
    pub(crate) data: serde_json::Value,
}

impl<'a> EventLine<'a> {
    pub(crate) fn of(event: &'a crate::model::Event) -> Self {
        EventLine {
            event: event.name.as_str(),
            uid: event.uid,
            time: event.time_ms,
            data: serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The tag in a file set's file names.
pub(crate) fn tag(uid: i64, mix: bool) -> String {
    if mix {
        "mix".into()
    } else if uid == EVENTS_SET {
        "events".into()
    } else {
        format!("u{uid}")
    }
}

/// Writes `bytes` to `path` atomically (a temporary file, synced, renamed).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// Syncs the directory holding `path`, so that a file created or renamed
/// there survives a power loss along with its contents.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Appends `lines` to the slice file `root/slice.file` at the slice's
/// length (cutting off anything past it), creating the file if the slice is
/// new; returns its new length. Not synced: see [`sync`].
pub(crate) fn append(root: &Path, slice: &Slice, lines: &[u8]) -> std::io::Result<u64> {
    let path = root.join(&slice.file);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new().create(true).write(true).truncate(false).open(&path)?;
    // Whatever lies past the synced length is from before a crash.
    file.set_len(slice.bytes)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(slice.bytes))?;
    file.write_all(lines)?;
    Ok(slice.bytes + lines.len() as u64)
}

/// Makes a slice's appended lines durable, and its directory entry (the
/// file may be new since the last sync).
pub(crate) fn sync(root: &Path, slice: &Slice) -> std::io::Result<()> {
    let path = root.join(&slice.file);
    File::options().write(true).open(&path)?.sync_data()?;
    sync_dir(&path)
}

/// Cuts a slice back to its saved length (after a crash, lines past it are
/// written again from history); a missing file is left to be re-created.
pub(crate) fn cut_back(root: &Path, slice: &Slice) -> std::io::Result<()> {
    match File::options().write(true).open(root.join(&slice.file)) {
        Ok(file) if file.metadata()?.len() > slice.bytes => file.set_len(slice.bytes),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The path of a file set's manifest, relative to the root.
pub(crate) fn manifest_name(folder: &str, sid: &str, tag: &str) -> String {
    format!("{folder}/{sid}_{tag}.manifest.json")
}

/// The path of a file set's `n`th slice, relative to the root.
pub(crate) fn slice_name(folder: &str, sid: &str, tag: &str, n: usize) -> String {
    format!("{folder}/{sid}_{tag}_{n:04}.jsonl")
}

/// The root-relative path as a filesystem path.
pub(crate) fn path(root: &Path, relative: &str) -> PathBuf {
    root.join(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_text_and_binary_apart() {
        let row = |body| StoredMessage { id: 3, from: 9, mtype: 51, mid: 7, body, attrs: "a".into(), mtime: 1000 };
        let text = row(Body::Text("hi".into()));
        let line = serde_json::to_string(&Line::of(&text)).unwrap();
        assert_eq!(line, r#"{"id":3,"from":9,"mtype":51,"mid":7,"msg":"hi","attrs":"a","mtime":1000}"#);
        let binary = row(Body::Binary(vec![0, 255]));
        let line = serde_json::to_string(&Line::of(&binary)).unwrap();
        assert_eq!(line, r#"{"id":3,"from":9,"mtype":51,"mid":7,"binary":"AP8=","attrs":"a","mtime":1000}"#);
    }

    #[test]
    fn append_cuts_back_to_the_synced_length() {
        let root = std::env::temp_dir().join(format!("rtm-rec-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut slice = Slice { file: "p/s_mix_0001.jsonl".into(), start_time: 0, bytes: 0, messages: 0 };
        slice.bytes = append(&root, &slice, b"one\n").unwrap();
        // A crash after this append but before the progress was saved:
        append(&root, &slice, b"lost\n").unwrap();
        // Resuming from the saved length writes over it.
        slice.bytes = append(&root, &slice, b"two\n").unwrap();
        assert_eq!(std::fs::read(root.join(&slice.file)).unwrap(), b"one\ntwo\n");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
