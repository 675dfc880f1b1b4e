//! Room recording: a room's messages, read from history, written to files
//! (JSON Lines) per sender (`individual`) or for the whole room (`mix`).
//! The lifecycle follows the cloud-recording REST API the product comes
//! from: `acquire` a resource id, `start`, `update`, `query`, `stop`.

use serde::{Deserialize, Serialize};

use super::{Empty, Method};

/// `acquirerecording {rid}` → `{resource_id}`: reserves a recording of room
/// `rid`; the id must be used by `startrecording` within 5 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquireRecording {
    /// Room id.
    pub rid: i64,
}

impl Method for AcquireRecording {
    const NAME: &'static str = "acquirerecording";
    type Answer = RecordingResource;
}

/// The answer of `acquirerecording`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingResource {
    /// Opaque; valid for 5 minutes, for one `startrecording`.
    pub resource_id: String,
}

/// `startrecording {resource_id, rid, mode, …}` → `{sid}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRecording {
    /// From `acquirerecording`, for the same room.
    pub resource_id: String,
    /// Room id.
    pub rid: i64,
    /// `individual` (a file set per sender) or `mix` (one for the room).
    pub mode: String,
    /// Record only these senders (absent: everyone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uids: Option<Vec<i64>>,
    /// Never record these senders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_uids: Option<Vec<i64>>,
    /// Record only these message types (absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtypes: Option<Vec<i64>>,
    /// Stop after the room has had no member this long (default 30 s; 5 s to 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle_seconds: Option<i64>,
    /// Stop after this long (absent: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<i64>,
    /// Where the files go: `local` (the default) or `s3` (the project's bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// A folder for the files, under the project's (default: the room id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_prefix: Option<String>,
    /// Record the room's events too (members joining and leaving, bans,
    /// info changes…), as lines among the messages (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<bool>,
}

impl Method for StartRecording {
    const NAME: &'static str = "startrecording";
    type Answer = RecordingStarted;
}

/// The answer of `startrecording`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStarted {
    /// The recording's id.
    pub sid: String,
}

/// `updaterecording {sid, uids?, exclude_uids?}` → `{}`: changes whom a
/// running recording records, from the next message on. A list given
/// replaces the old one; an empty `uids` means everyone again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRecording {
    /// The recording.
    pub sid: String,
    /// Record only these senders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uids: Option<Vec<i64>>,
    /// Never record these senders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_uids: Option<Vec<i64>>,
}

impl Method for UpdateRecording {
    const NAME: &'static str = "updaterecording";
    type Answer = Empty;
}

/// `queryrecording {sid}` → `{status, slice_start_time, files}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRecording {
    /// The recording.
    pub sid: String,
}

impl Method for QueryRecording {
    const NAME: &'static str = "queryrecording";
    type Answer = RecordingStatus;
}

/// The answer of `queryrecording`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStatus {
    /// The seed's service status: 5 recording, 6 stop requested, 7 stopped
    /// (files being finished), 8 exited, 20 exited abnormally.
    pub status: i64,
    /// When the recording started, Unix milliseconds.
    pub slice_start_time: i64,
    /// One entry per file set (its manifest).
    pub files: Vec<RecordingFile>,
    /// `uploaded` (local storage, or every file in the bucket) or
    /// `backuped` (an S3 recording with files still waiting locally).
    #[serde(default)]
    pub upload_status: String,
}

/// A file set of a recording, as `queryrecording` and `stoprecording` list it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingFile {
    /// The manifest's name, relative to the storage root.
    pub filename: String,
    /// The sender it records, as a string; `"0"` for a `mix` recording.
    pub uid: String,
    /// `true` for `mix`.
    pub mixed_all_users: bool,
    /// Whether playback can play it (a manifest always can).
    pub is_playable: bool,
    /// When its first slice started, Unix milliseconds.
    pub slice_start_time: i64,
}

/// `stoprecording {sid}` → `{files, upload_status}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRecording {
    /// The recording.
    pub sid: String,
}

impl Method for StopRecording {
    const NAME: &'static str = "stoprecording";
    type Answer = RecordingStopped;
}

/// The answer of `stoprecording`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStopped {
    /// The file sets, complete.
    pub files: Vec<RecordingFile>,
    /// `uploaded` (every file is in its storage), `backuped` (some wait in
    /// the local backup folder to be uploaded later), or `unknown`.
    pub upload_status: String,
}

/// `startplayback {rid, files, repeat?, speed?, from_uid?, storage?}` → `{}`: plays
/// recorded manifests or prepared JSON Lines files into room `rid` as room
/// messages, keeping their relative timing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartPlayback {
    /// Room id.
    pub rid: i64,
    /// Paths relative to the server's recordings directory, separated by
    /// `|`: manifests (`…manifest.json`, as `queryrecording` names them) or
    /// `.jsonl` files.
    pub files: String,
    /// Times to play the list (default 1; 0 = until `stopplayback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<i64>,
    /// Timing divided by this (default 1.0; 2.0 plays twice as fast; 0 =
    /// without waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// Send every message as this user (default: each line's sender).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_uid: Option<i64>,
    /// Where the files are: `local` (default, the recordings directory) or
    /// `s3` (the project's `recording_s3` bucket, the names being keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

impl Method for StartPlayback {
    const NAME: &'static str = "startplayback";
    type Answer = Empty;
}

/// `stopplayback {rid}` → `{}`: stops room `rid`'s playback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopPlayback {
    /// Room id.
    pub rid: i64,
}

impl Method for StopPlayback {
    const NAME: &'static str = "stopplayback";
    type Answer = Empty;
}
