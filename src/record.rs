//! Supervisor records and locks: the files a supervisor keeps in the state dir
//! (docs/DESIGN.md, "Records and locks").
//!
//! `<stem>.lock` is held with an exclusive `flock` for the supervisor's whole life;
//! the kernel drops it when the supervisor dies, however it dies, so "lock free" is
//! the one trustworthy sign that no supervisor holds the name. The holder writes its
//! own identity (PID and start time) into the lock file before it starts anything,
//! so even a supervisor killed before its first record names itself. `<stem>.json`
//! describes what it supervises; it is written atomically (a private temp file
//! renamed over it, `0600`) and bounded in size. Every state-dir entry is opened
//! without following symlinks and without blocking, and read only when it is a
//! regular file of a bounded size (a lock file is locked at any size: locking reads
//! nothing). A record is information, never authority: nothing
//! is signalled because a record says so without checking the process.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::contain::ContainKind;
use crate::owner::Owner;
use crate::process::{Pid, StartTime};
use crate::sys::{self, FileId};

pub const RECORD_VERSION: u32 = 1;

/// Records larger than this are not read. A writer never comes near it: the
/// command is cut to [`MAX_COMMAND`] and leases are capped, so a real record stays
/// under ~64 KiB, and there is no size at which a writer succeeds and a reader fails.
pub const MAX_RECORD: u64 = 1 << 20;

/// Bytes of the server's argv kept in the record; the rest is summarised.
const MAX_COMMAND: usize = 16 * 1024;

/// A lock file's claim is a PID, a start time and perhaps a cgroup path; a longer
/// one is not read (it is not a claim).
const MAX_LOCK_CONTENT: u64 = 8 * 1024;

/// The bound for opening a lock file to lock it or to probe its lock: none. Locking
/// reads nothing, so size does not matter there, and a lock file made larger than
/// any claim (by hand, even while it is held) still locks, still reads as held
/// while it is, and is truncated by its next holder's claim: it never blocks a
/// name, and a held one is never taken for free.
const ANY_SIZE: u64 = u64::MAX;

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
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorId {
    pub pid: Pid,
    pub start: StartTime,
}

impl SupervisorId {
    /// The environment entry every process of this supervisor's server tree
    /// inherits. The sweep and `gc` use it to recognise the leftovers of a dead
    /// supervisor, whose start times are not in any record (grandchildren, escapees).
    pub fn tree_marker(&self) -> String {
        format!("{MARKER_KEY}={}.{}", self.pid, self.start.0)
    }

    /// Whether this supervisor runs: its PID shows a live process with the same
    /// start time. A look that failed (out of descriptors, say) proves nothing and
    /// counts as running, so nothing is swept or killed on its account.
    pub fn is_running(&self) -> bool {
        match sys::proc_lookup(self.pid) {
            Ok(info) => info.is_some_and(|p| p.is_live() && p.start == self.start),
            Err(_) => true,
        }
    }
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
    /// Why the tree is being torn down; only while `state` is `stopping`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_cause: Option<StopCause>,
    /// The server exited 0 and left its tree running, which ocwrap follows
    /// (docs/DESIGN.md, "Lifecycle", rule 9): `server` names the leader that
    /// exited.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub daemonized: bool,
}

const MARKER_KEY: &str = "OCWRAP_TREE";

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

/// Why a state-dir file could not be used.
#[derive(Debug)]
pub enum Unreadable {
    /// A symlink, FIFO, directory…: never followed, never read. Says which.
    NotRegular(&'static str),
    /// Too large to be what it claims to be.
    TooLarge,
    /// Not a record: bad JSON, missing fields, wrong version.
    Corrupt(String),
    Io(io::Error),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::NotRegular(what) => write!(f, "not a regular file but {what}"),
            Unreadable::TooLarge => write!(f, "too large to be a record"),
            Unreadable::Corrupt(why) => write!(f, "corrupt: {why}"),
            Unreadable::Io(e) => write!(f, "unreadable: {e}"),
        }
    }
}

/// Opens a state-dir entry for reading: no symlink followed, no blocking open (a
/// planted FIFO), and only a regular file of at most `limit` bytes is returned.
fn open_entry(path: &Path, limit: u64, write: bool, create: bool) -> Result<File, Unreadable> {
    let file = sys::state_entry_options()
        .read(true)
        .write(write)
        .create(create)
        .truncate(false)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if sys::is_symlink_refusal(&e) => return Err(Unreadable::NotRegular("a symlink")),
        // A directory opened for writing, a socket: refused by `open` itself.
        Err(e) => {
            return Err(match fs::symlink_metadata(path) {
                Ok(meta) if !meta.is_file() => Unreadable::NotRegular(sys::file_kind(&meta)),
                _ => Unreadable::Io(e),
            });
        }
    };
    let meta = file.metadata().map_err(Unreadable::Io)?;
    if !meta.is_file() {
        return Err(Unreadable::NotRegular(sys::file_kind(&meta)));
    }
    if meta.len() > limit {
        return Err(Unreadable::TooLarge);
    }
    Ok(file)
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

/// An exclusive lock on a lock file, held until dropped.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
    id: FileId,
}

impl Lock {
    /// Takes the lock at `path`, creating the file, without waiting; `Ok(None)`
    /// when another process holds it.
    pub fn try_acquire(path: PathBuf) -> io::Result<Option<Lock>> {
        Lock::take(path, true)
    }

    /// Takes the lock of an existing lock file without waiting and without
    /// creating one: what a sweeper does, so that it never makes a lock file that
    /// a new supervisor then finds held. `Ok(None)`: held, or no longer there.
    pub fn try_existing(path: PathBuf) -> io::Result<Option<Lock>> {
        Lock::take(path, false)
    }

    /// Waits until the lock file at `path` is free and takes it, or gives up at
    /// `deadline` (`Ok(None)`). `flock` has no timeout, so the blocking call runs
    /// on a thread that is abandoned (and ends with the process) past the deadline.
    pub fn acquire_until(path: PathBuf, deadline: Instant) -> io::Result<Option<Lock>> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("lock-wait".into())
            .spawn(move || {
                let _ = tx.send(Lock::wait_for(path));
            })?;
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(taken) => taken.map(Some),
            Err(_) => Ok(None),
        }
    }

    fn wait_for(path: PathBuf) -> io::Result<Lock> {
        loop {
            let file = open_lock(&path, true)?;
            sys::lock_exclusive(&file)?;
            if let Some(lock) = Lock::confirm(file, &path)? {
                return Ok(lock);
            }
        }
    }

    /// Lock files are unlinked by whoever holds them when a supervisor ends (so the
    /// directory does not fill with them), which opens a classic race: we may open
    /// the old file just before it is unlinked and lock an inode nobody else will
    /// ever look at. So after locking, the path must still name the inode we locked;
    /// if not, we try again on the new file.
    fn take(path: PathBuf, create: bool) -> io::Result<Option<Lock>> {
        loop {
            let file = match open_lock(&path, create) {
                Ok(file) => file,
                Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if !sys::try_lock_exclusive(&file)? {
                return Ok(None);
            }
            match Lock::confirm(file, &path)? {
                Some(lock) => return Ok(Some(lock)),
                None if create => continue,
                None => return Ok(None),
            }
        }
    }

    fn confirm(file: File, path: &Path) -> io::Result<Option<Lock>> {
        let id = FileId::of_file(&file)?;
        Ok((FileId::at(path) == Some(id)).then(|| Lock {
            file,
            path: path.to_path_buf(),
            id,
        }))
    }

    /// Writes the holder's claim into the lock file, replacing what a dead holder
    /// left there.
    pub fn claim(&mut self, claim: &Claim) -> io::Result<()> {
        let mut text = format!("{} {}\n", claim.id.pid, claim.id.start.0);
        if let Some(cgroup) = &claim.cgroup {
            text.push_str(cgroup);
            text.push('\n');
        }
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(text.as_bytes())
    }

    /// Whether the lock's path still names the file we hold.
    pub fn is_in_place(&self) -> bool {
        FileId::at(&self.path) == Some(self.id)
    }

    /// Removes the lock file while still holding the lock, then releases it. A
    /// file that is no longer ours (the state dir was wiped and someone else took
    /// the name) is left alone.
    pub fn remove(self) {
        remove_if_same(&self.path, self.id);
        drop(self.file);
    }
}

/// Removes `path` only if it still names the file `id`. (A check and then an
/// unlink: another process could replace the file between the two, but only one
/// that ignores the lock protocol; every ocwrap takes the name's lock first.)
pub fn remove_if_same(path: &Path, id: FileId) {
    if FileId::at(path) == Some(id) {
        let _ = fs::remove_file(path);
    }
}

fn open_lock(path: &Path, create: bool) -> io::Result<File> {
    match open_entry(path, ANY_SIZE, true, create) {
        Ok(file) => Ok(file),
        Err(Unreadable::Io(e)) => Err(e),
        Err(why) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {why}", path.display()),
        )),
    }
}

/// Whether a live supervisor holds the lock at `path`. Looks without creating
/// anything and never blocks (a FIFO planted there reads as not held).
pub fn is_held(path: &Path) -> bool {
    lock_hold(path) == Some(true)
}

/// Whether the lock at `path` may be held: held, or we could not tell because
/// we are short of descriptors or memory. What decides that a supervisor is
/// dead asks this: a look that failed is never taken for a free lock.
pub fn may_be_held(path: &Path) -> bool {
    lock_hold(path) != Some(false)
}

/// `Some(true)` held, `Some(false)` free (or no lock file, or not a regular
/// file), `None` when a shortage of resources kept us from looking.
fn lock_hold(path: &Path) -> Option<bool> {
    let shortage = |e: &io::Error| sys::is_resource_shortage(e);
    match open_entry(path, ANY_SIZE, false, false) {
        Ok(file) => match sys::try_lock_shared(&file) {
            Ok(taken) => Some(!taken),
            Err(e) if shortage(&e) => None,
            Err(_) => Some(false),
        },
        Err(Unreadable::Io(e)) if shortage(&e) => None,
        Err(_) => Some(false),
    }
}

/// Waits until nobody holds the lock at `path`, or until `deadline`; true when it
/// is free (or gone).
pub fn wait_until_free(path: &Path, deadline: Instant) -> bool {
    let Ok(file) = open_entry(path, ANY_SIZE, false, false) else {
        return true;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("lock-wait".into())
        .spawn(move || {
            let _ = tx.send(sys::lock_shared(&file).is_ok());
        });
    spawned.is_ok()
        && rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or(false)
}

/// What a supervisor writes into its lock file: who it is, and the cgroup its
/// server runs in (written again once it is chosen, before the server starts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub id: SupervisorId,
    pub cgroup: Option<String>,
}

/// The claim a holder wrote into the lock file at `path` (see [`Lock::claim`]):
/// `<pid> <start time>` on the first line, the cgroup path on the second.
pub fn claimed_by(path: &Path) -> Option<Claim> {
    let file = open_entry(path, MAX_LOCK_CONTENT, false, false).ok()?;
    let mut text = String::new();
    file.take(MAX_LOCK_CONTENT).read_to_string(&mut text).ok()?;
    let mut lines = text.lines();
    let mut words = lines.next()?.split_whitespace();
    let pid = words.next()?.parse::<Pid>().ok()?;
    let start = StartTime(words.next()?.parse().ok()?);
    if words.next().is_some() {
        return None;
    }
    let cgroup = match (lines.next(), lines.next()) {
        (None, _) => None,
        (Some(path), None) if path.starts_with('/') => Some(path.to_string()),
        _ => return None,
    };
    Some(Claim {
        id: SupervisorId { pid, start },
        cgroup,
    })
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
    fn stop_causes_are_written_as_their_words() {
        for cause in [
            StopCause::OwnersGone,
            StopCause::Stop,
            StopCause::Idle,
            StopCause::Signal,
            StopCause::ServerExited,
        ] {
            let json = serde_json::to_string(&cause).unwrap();
            assert_eq!(json, format!("\"{}\"", cause.as_str()));
        }
    }

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
