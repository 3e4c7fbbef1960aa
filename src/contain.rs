//! Containment: what holds the server's tree together so that teardown reaches all
//! of it (docs/DESIGN.md, "Containment"), and the clean-up of a dead supervisor's cgroup.
//!
//! - `cgroup`: the server starts inside its own child cgroup (cgroup v2), which no
//!   descendant can leave. Its members are the cgroup's list, teardown ends with the
//!   kernel killing the whole cgroup, and "all gone" is an event. After ocwrap's own
//!   death (SIGKILL, OOM) the cgroup still names exactly what is left.
//! - `group`: the server's process group plus everything below the supervisor,
//!   which is a child subreaper; members are found by walking down from it.
//!
//! `auto` takes a cgroup when a writable cgroup v2 is there, else the group.
//! On Windows the seam's `Cgroup` is a job object (`sys/windows/contain.rs`): `auto` always
//! gets one, and the kernel empties it when ocwrap dies, so there is never a dead
//! supervisor's job to clean up.
//! Not here: finding members and signalling them (`crate::tree`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cli::ContainArg;
use crate::diag;
use crate::error::Error;
use crate::identity::{SupervisorId, TreeMarker};
use crate::process::Pid;
use crate::sys::{self, Cgroup, Signal};

/// How long a leftover cgroup may take to empty after `cgroup.kill`.
const LEFTOVER_KILL_WAIT: Duration = crate::teardown::KILL_WAIT;

/// The containment in use, as the record and `status` name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainKind {
    Cgroup,
    /// Also what a record written before containment was recorded means.
    #[default]
    Group,
}

/// The containment chosen for one server, before it is spawned.
#[derive(Debug)]
pub enum Containment {
    Cgroup(Cgroup),
    Group,
}

impl Containment {
    /// Chooses per `--contain`. The cgroup is named after the supervisor (its tree
    /// marker value), so a leftover cgroup says whose it was.
    pub fn choose(arg: ContainArg, supervisor: SupervisorId) -> Result<Self, Error> {
        let name = supervisor.marker().cgroup_name();
        if arg != ContainArg::Group {
            remove_dead_cgroups();
        }
        let containment = match arg {
            ContainArg::Group => Containment::Group,
            ContainArg::Cgroup => create_recordable(&name)
                .map(Containment::Cgroup)
                .map_err(Error::os("creating the server's cgroup (--contain cgroup)"))?,
            ContainArg::Auto => create_recordable(&name).map_or_else(
                |e| {
                    diag::note(format_args!("no cgroup for the server ({e})"));
                    Containment::Group
                },
                Containment::Cgroup,
            ),
        };
        match &containment {
            Containment::Cgroup(cgroup) => diag::note(format_args!(
                "containment: cgroup {}{}",
                cgroup.path().display(),
                if cgroup.can_kill() {
                    ""
                } else {
                    " (no cgroup.kill: members are signalled one by one)"
                }
            )),
            Containment::Group => diag::note("containment: process group and subreaper tree"),
        }
        Ok(containment)
    }

    pub fn kind(&self) -> ContainKind {
        match self {
            Containment::Cgroup(_) => ContainKind::Cgroup,
            Containment::Group => ContainKind::Group,
        }
    }

    /// The cgroup's path, for the record and the claim.
    pub fn cgroup_path(&self) -> Option<CgroupPath> {
        match self {
            // `choose` keeps only a cgroup whose path can be recorded.
            Containment::Cgroup(cgroup) => CgroupPath::of(cgroup.path()),
            Containment::Group => None,
        }
    }
}

/// A new cgroup named `name`, if its path can be recorded ([`CgroupPath::of`]): a
/// cgroup the record could not name would be lost to the clean-up after a crash.
fn create_recordable(name: &str) -> io::Result<Cgroup> {
    let cgroup = Cgroup::create(name)?;
    if CgroupPath::of(cgroup.path()).is_none() {
        // Dropping it removes it.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "its path {} is not UTF-8 or has a line break, so no record could name it",
                cgroup.path().display()
            ),
        ));
    }
    Ok(cgroup)
}

/// Where a server's cgroup is, as the record and the lock's claim say it: an
/// absolute path in UTF-8 without a line break (the claim is one line per field).
/// Made from a live cgroup's path without loss ([`CgroupPath::of`]), or read from a
/// record or a claim as written there ([`CgroupPath::recorded`]): a path read back
/// is a record's word only, and `sys::kill_leftover` checks what it names before
/// anything is touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CgroupPath(String);

impl CgroupPath {
    /// `path`, if it can be recorded as it is (UTF-8, no line break).
    pub fn of(path: &Path) -> Option<CgroupPath> {
        path.to_str()
            .filter(|text| !text.contains(['\n', '\r']))
            .map(|text| CgroupPath(text.to_string()))
    }

    /// A path as a record or a claim names it.
    pub fn recorded(text: &str) -> CgroupPath {
        CgroupPath(text.to_string())
    }

    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Kills what is left in the cgroup of a dead supervisor, waits until it is empty,
/// removes it, and returns the PIDs that were in it (`sys::kill_leftover`).
///
/// Refuses (`InvalidInput`) a supervisor that is still alive, and (in `sys`) a path
/// that is not a cgroup2 directory named exactly after `marker`
/// ([`TreeMarker::cgroup_name`]) below a cgroup2 mount: a record's word alone never
/// leads to a kill. A cgroup that no longer exists has nothing left: `Ok` with no
/// PIDs.
pub fn kill_leftover_cgroup(path: &CgroupPath, marker: TreeMarker) -> io::Result<Vec<Pid>> {
    if marker.0.is_running() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the supervisor of {path} is alive"),
        ));
    }
    sys::kill_leftover(path.as_path(), &marker.cgroup_name(), LEFTOVER_KILL_WAIT)
}

/// Removes the empty cgroups that dead supervisors left inside our own cgroup
/// (after a SIGKILL or an OOM kill nothing else removes them); returns their paths.
/// Only empty ones: those still holding processes are for `gc` to kill, from their
/// record. Only a cgroup named after a supervisor that is not running is touched.
pub fn remove_dead_cgroups() -> Vec<PathBuf> {
    sys::remove_empty_leftovers(&|name| {
        TreeMarker::of_cgroup_name(name).is_some_and(|marker| !marker.0.is_running())
    })
}

/// Sends `signal` to `pid` only if, once pinned by a pidfd, it is still in `cgroup`:
/// a PID read from the cgroup's list and recycled since then is left alone.
/// An error when the pidfd could not be opened or the membership not read (out
/// of descriptors, say): then nothing was sent.
pub fn signal_member(cgroup: &Cgroup, pid: Pid, signal: Signal) -> io::Result<()> {
    let pidfd = sys::PidFd::open(pid)?;
    if cgroup.holds(pid)? {
        let _ = pidfd.send_signal(signal);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_path_is_recorded_only_as_it_is() {
        let plain = Path::new("/sys/fs/cgroup/a b/ocwrap-1.2");
        assert_eq!(CgroupPath::of(plain).unwrap().as_path(), plain);
        // The claim is one field per line: a path with a line break would read back
        // as another path.
        assert_eq!(CgroupPath::of(Path::new("/sys/fs/cgroup/a\nb")), None);
        assert_eq!(CgroupPath::of(Path::new("/sys/fs/cgroup/a\rb")), None);
    }

    #[test]
    fn a_live_supervisor_is_refused() {
        let me = SupervisorId::current().unwrap();
        let path = CgroupPath::recorded("/sys/fs/cgroup/ocwrap-x");
        let err = kill_leftover_cgroup(&path, me.marker()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
