//! Supervisor records (docs/DESIGN.md, "Records and locks"): `<name>.json`
//! describes what a supervisor supervises. It is written atomically (a private
//! temp file renamed over it, `0600`) and bounded in size. A record is
//! information, never authority: nothing is signalled because a record says so
//! without checking the process.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::entry::{Unreadable, open_entry};
use crate::contain::{CgroupPath, ContainKind};
use crate::identity::{ServerId, SupervisorId};
use crate::owner::Owner;
use crate::sys::{self, FileId};

pub const RECORD_VERSION: u32 = 1;

/// Records larger than this are not read. A writer never comes near it: the
/// command is cut to [`MAX_COMMAND`] and leases are capped, so a real record stays
/// under ~64 KiB, and there is no size at which a writer succeeds and a reader fails.
pub const MAX_RECORD: u64 = 1 << 20;

/// Bytes of the server's argv kept in the record; the rest is summarised.
const MAX_COMMAND: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    Starting,
    Ready,
    Stopping,
}

/// Why a supervisor is tearing its tree down: `stop_cause` in a record whose
/// `state` is `stopping`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopCause {
    /// The last lease is gone (after `--linger`).
    OwnersGone,
    /// `ocwrap stop`.
    Stop,
    /// `--idle-timeout`: no established connection on the port for that long.
    Idle,
    /// A terminating signal to the supervisor.
    Signal,
    /// The server exited by itself.
    ServerExited,
    /// The supervisor's guard died (`crate::guard`).
    GuardGone,
}

impl StopCause {
    /// The word the record uses (`idle`, `owners_gone`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            StopCause::OwnersGone => "owners_gone",
            StopCause::Stop => "stop",
            StopCause::Idle => "idle",
            StopCause::Signal => "signal",
            StopCause::ServerExited => "server_exited",
            StopCause::GuardGone => "guard_gone",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub name: Option<String>,
    pub supervisor: SupervisorId,
    pub server: ServerId,
    pub command: Vec<String>,
    pub cwd: String,
    pub port: Option<u16>,
    pub url: Option<String>,
    /// The local socket (`--socket`), where the server is reached through one.
    #[serde(default)]
    pub socket: Option<String>,
    /// How readiness is judged: `exec`, `connect`, `health`, `notify`, `fd:N`
    /// (empty in records from before).
    #[serde(default)]
    pub ready: String,
    pub owners: Vec<Owner>,
    pub started_at: String,
    pub state: RecordState,
    pub log: Option<String>,
    /// How the server's tree is contained (`group` in records from before).
    #[serde(default)]
    pub contain: ContainKind,
    /// The server's cgroup, with `cgroup` containment.
    #[serde(default)]
    pub cgroup: Option<CgroupPath>,
    /// Why the tree is being torn down; only while `state` is `stopping`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_cause: Option<StopCause>,
    /// The server exited 0 and left its tree running, which ocwrap follows
    /// (docs/DESIGN.md, "Lifecycle", rule 9): `server` names the leader that
    /// exited.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub daemonized: bool,
}

/// The server's argv as recorded: whole while it fits in [`MAX_COMMAND`] bytes,
/// else the arguments that fit and a last entry saying what was left out.
pub fn bounded_command<'a>(argv: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let argv: Vec<&str> = argv.into_iter().collect();
    let mut kept = Vec::new();
    let mut used = 0;
    for (at, arg) in argv.iter().enumerate() {
        if used + arg.len() > MAX_COMMAND {
            let rest: usize = argv[at..].iter().map(|a| a.len()).sum();
            kept.push(format!(
                "… {} more argument(s), {rest} bytes, not recorded",
                argv.len() - at
            ));
            break;
        }
        used += arg.len();
        kept.push((*arg).to_string());
    }
    kept
}

/// Reads a record: a regular file of at most [`MAX_RECORD`] bytes.
pub fn read(path: &Path) -> Result<Record, Unreadable> {
    let file = open_entry(path, MAX_RECORD, false, false)?;
    let mut text = Vec::new();
    file.take(MAX_RECORD)
        .read_to_end(&mut text)
        .map_err(Unreadable::Io)?;
    let record: Record =
        serde_json::from_slice(&text).map_err(|e| Unreadable::Corrupt(e.to_string()))?;
    if record.version != RECORD_VERSION {
        return Err(Unreadable::Corrupt(format!(
            "unknown version {}",
            record.version
        )));
    }
    Ok(record)
}

/// Writes `record` to `path` atomically: a new `0600` temp file in the same
/// directory (created exclusively, so a planted file or symlink cannot be written
/// through), then a rename over the target (which replaces, never follows, a link).
/// Returns the identity of the file now at `path`.
pub fn write(path: &Path, record: &Record) -> io::Result<FileId> {
    let mut text = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    text.push(b'\n');
    if text.len() as u64 > MAX_RECORD {
        return Err(io::Error::other("record larger than the reader's limit"));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("record");
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&temp);
    let result = (|| {
        let mut file = sys::state_entry_options()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(&text)?;
        let id = FileId::of_file(&file)?;
        fs::rename(&temp, path)?;
        Ok(id)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_causes_are_written_as_their_words() {
        for cause in [
            StopCause::OwnersGone,
            StopCause::Stop,
            StopCause::Idle,
            StopCause::Signal,
            StopCause::ServerExited,
            StopCause::GuardGone,
        ] {
            let json = serde_json::to_string(&cause).unwrap();
            assert_eq!(json, format!("\"{}\"", cause.as_str()));
        }
    }
}
