//! Name locks and claims (docs/DESIGN.md, "Records and locks"): `<name>.lock` is
//! held with an exclusive lock for the supervisor's whole life; the kernel drops it
//! when the supervisor dies, however it dies, so "lock free" is the one
//! trustworthy sign that no supervisor holds the name. The holder writes its claim
//! (its own identity, later its cgroup) into the lock file before it starts
//! anything, so even a supervisor killed before its first record names itself.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::entry::{Unreadable, open_entry, remove_if_same};
use crate::contain::CgroupPath;
use crate::identity::SupervisorId;
use crate::sys::{self, FileId};

/// A lock file's claim is a PID, a start time and perhaps a cgroup path; a longer
/// one is not read (it is not a claim).
const MAX_LOCK_CONTENT: u64 = 8 * 1024;

/// The bound for opening a lock file to lock it or to probe its lock: none. Locking
/// reads nothing, so size does not matter there, and a lock file made larger than
/// any claim (by hand, even while it is held) still locks, still reads as held
/// while it is, and is truncated by its next holder's claim: it never blocks a
/// name, and a held one is never taken for free.
const ANY_SIZE: u64 = u64::MAX;

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
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(claim.to_string().as_bytes())
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
/// Its text: the supervisor's ID (`<pid>.<start time>`) on the first line, the
/// cgroup's path on the second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub id: SupervisorId,
    pub cgroup: Option<CgroupPath>,
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.id)?;
        match &self.cgroup {
            Some(cgroup) => writeln!(f, "{cgroup}"),
            None => Ok(()),
        }
    }
}

impl std::str::FromStr for Claim {
    type Err = String;

    /// Also reads the first line as `<pid> <start time>`, which ocwrap wrote
    /// before the supervisor's ID had one text form, so that a supervisor of an
    /// earlier version that died is still recognised, and its leftovers swept.
    fn from_str(text: &str) -> Result<Claim, String> {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        let id = match first.split_once(' ') {
            Some((pid, start)) => format!("{pid}.{start}").parse(),
            None => first.parse(),
        }?;
        let cgroup = match (lines.next(), lines.next()) {
            (None, _) => None,
            (Some(path), None) if path.starts_with('/') => Some(CgroupPath::recorded(path)),
            _ => return Err("a claim has at most two lines, the second a path".into()),
        };
        Ok(Claim { id, cgroup })
    }
}

/// The claim a holder wrote into the lock file at `path` (see [`Lock::claim`]).
pub fn claimed_by(path: &Path) -> Option<Claim> {
    let file = open_entry(path, MAX_LOCK_CONTENT, false, false).ok()?;
    let mut text = String::new();
    file.take(MAX_LOCK_CONTENT).read_to_string(&mut text).ok()?;
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Pid, StartTime};

    #[test]
    fn a_claim_reads_what_it_writes_and_the_earlier_form() {
        let id = SupervisorId {
            pid: Pid::new(42).unwrap(),
            start: StartTime(777),
        };
        let bare = Claim { id, cgroup: None };
        let with_cgroup = Claim {
            id,
            cgroup: Some(CgroupPath::recorded("/sys/fs/cgroup/x/ocwrap-42.777")),
        };
        assert_eq!(bare.to_string(), "42.777\n");
        for claim in [&bare, &with_cgroup] {
            assert_eq!(claim.to_string().parse::<Claim>().as_ref(), Ok(claim));
        }
        assert_eq!("42 777\n".parse::<Claim>(), Ok(bare));
        for bad in [
            "",
            "42\n",
            "42 777 9\n",
            "42  777\n",
            "42.777\nrelative\n",
            "42.777\n/a\n/b\n",
        ] {
            assert!(bad.parse::<Claim>().is_err(), "{bad:?}");
        }
    }
}
