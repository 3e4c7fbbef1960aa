//! Supervisor records and locks (SPEC §4).
//!
//! `<stem>.lock` is held with an exclusive `flock` for the supervisor's whole life;
//! the kernel drops it when the supervisor dies, however it dies, so "lock free"
//! is the one trustworthy sign of a dead supervisor. `<stem>.json` describes what it
//! supervises; it is written atomically (a private temp file renamed over it, `0600`)
//! and read without following symlinks. A record is information, never authority:
//! nothing is signalled because a record says so without checking the process.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::contain::ContainKind;
use crate::owner::Owner;
use crate::process::{Pid, StartTime};
use crate::state::StateDir;
use crate::sys;

pub const RECORD_VERSION: u32 = 1;

/// Records larger than this are not read (a real one is a few hundred bytes).
const MAX_RECORD: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    Starting,
    Ready,
    Stopping,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorId {
    pub pid: Pid,
    pub start: StartTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerId {
    pub pid: Pid,
    pub pgid: Pid,
    pub start: StartTime,
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
    pub owners: Vec<Owner>,
    pub started_at: String,
    pub state: RecordState,
    pub log: Option<String>,
    /// How the server's tree is contained (`group` in records from before).
    #[serde(default)]
    pub contain: ContainKind,
    /// The server's cgroup, with `cgroup` containment.
    #[serde(default)]
    pub cgroup: Option<String>,
}

impl Record {
    /// The environment entry every process of this supervisor's server tree
    /// inherits. `gc` uses it to recognise leftovers of a dead supervisor whose
    /// own start times are not in the record (grandchildren, escapees).
    pub fn tree_marker(&self) -> String {
        tree_marker(self.supervisor.pid, self.supervisor.start)
    }
}

const MARKER_KEY: &str = "OCWRAP_TREE";

pub fn tree_marker(supervisor: Pid, start: StartTime) -> String {
    format!("{MARKER_KEY}={supervisor}.{}", start.0)
}

/// Why a record file could not be used.
#[derive(Debug)]
pub enum Unreadable {
    /// The path is a symlink (or another non-regular file): never followed.
    NotRegular,
    /// Too large to be a record.
    TooLarge,
    /// Not a record: bad JSON, missing fields, wrong version.
    Corrupt(String),
    Io(io::Error),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::NotRegular => write!(f, "not a regular file (symlink?)"),
            Unreadable::TooLarge => write!(f, "too large to be a record"),
            Unreadable::Corrupt(why) => write!(f, "corrupt: {why}"),
            Unreadable::Io(e) => write!(f, "unreadable: {e}"),
        }
    }
}

/// Reads a record without following symlinks.
pub fn read(path: &Path) -> Result<Record, Unreadable> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(sys::NO_FOLLOW)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(Unreadable::NotRegular),
        Err(e) => return Err(Unreadable::Io(e)),
    };
    let meta = file.metadata().map_err(Unreadable::Io)?;
    if !meta.is_file() {
        return Err(Unreadable::NotRegular);
    }
    if meta.len() > MAX_RECORD {
        return Err(Unreadable::TooLarge);
    }
    let mut text = String::new();
    file.take(MAX_RECORD)
        .read_to_string(&mut text)
        .map_err(Unreadable::Io)?;
    let record: Record =
        serde_json::from_str(&text).map_err(|e| Unreadable::Corrupt(e.to_string()))?;
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
pub fn write(path: &Path, record: &Record) -> io::Result<()> {
    let mut text = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    text.push(b'\n');
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("record");
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&temp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(sys::NO_FOLLOW)
            .open(&temp)?;
        file.write_all(&text)?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// An exclusive lock on `<stem>.lock`, held until dropped.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// Takes the lock without waiting; `Ok(None)` when another process holds it.
    pub fn try_acquire(dir: &StateDir, stem: &str) -> io::Result<Option<Lock>> {
        Lock::take(dir.lock_path(stem), false)
    }

    /// Waits until the lock file at `path` is free, then takes it.
    pub fn acquire_file(path: PathBuf) -> io::Result<Lock> {
        Lock::take(path, true)?.ok_or_else(|| io::Error::other("lock not taken"))
    }

    /// Lock files are unlinked by whoever holds them when a supervisor ends (so the
    /// directory does not fill with them), which opens a classic race: we may open
    /// the old file just before it is unlinked and lock an inode nobody else will
    /// ever look at. So after locking, the path must still name the inode we locked;
    /// if not, we try again on the new file.
    fn take(path: PathBuf, wait: bool) -> io::Result<Option<Lock>> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(sys::NO_FOLLOW)
                .open(&path)?;
            if wait {
                file.lock()?;
            } else {
                match file.try_lock() {
                    Ok(()) => {}
                    Err(TryLockError::WouldBlock) => return Ok(None),
                    Err(TryLockError::Error(e)) => return Err(e),
                }
            }
            let locked = file.metadata()?;
            match fs::symlink_metadata(&path) {
                Ok(now) if now.ino() == locked.ino() && now.dev() == locked.dev() => {
                    return Ok(Some(Lock { file, path }));
                }
                _ => continue,
            }
        }
    }

    /// Removes the lock file while still holding the lock, then releases it.
    pub fn remove(self) {
        let _ = fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// Whether a live supervisor holds `<stem>.lock`. Looks without creating anything.
pub fn is_held(dir: &StateDir, stem: &str) -> bool {
    match open_existing_lock(dir, stem) {
        Some(file) => matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock)),
        None => false,
    }
}

/// Waits until no supervisor holds `<stem>.lock` (returns at once if none does).
pub fn wait_until_free(dir: &StateDir, stem: &str) -> io::Result<()> {
    match open_existing_lock(dir, stem) {
        Some(file) => file.lock_shared(),
        None => Ok(()),
    }
}

fn open_existing_lock(dir: &StateDir, stem: &str) -> Option<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(sys::NO_FOLLOW)
        .open(dir.lock_path(stem))
        .ok()
}

/// RFC 3339 UTC time of `at`, e.g. `2026-11-23T23:57:48Z`.
pub fn rfc3339(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds since the epoch of a time written by [`rfc3339`], or `None`.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, m, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days since 1970-01-01 of a civil date (inverse of the algorithm above).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_parses_what_it_writes() {
        for secs in [0, 951_782_400, 1_795_478_268, 4_102_444_800] {
            assert_eq!(
                parse_rfc3339(&rfc3339(UNIX_EPOCH + Duration::from_secs(secs as u64))),
                Some(secs)
            );
        }
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_478_268)),
            "2026-11-23T23:57:48Z"
        );
    }
}
