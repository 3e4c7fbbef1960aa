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
            ContainArg::Cgroup => Cgroup::create(&name)
                .map(Containment::Cgroup)
                .map_err(Error::os("creating the server's cgroup (--contain cgroup)"))?,
            ContainArg::Auto => Cgroup::create(&name).map_or_else(
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

    /// The cgroup's path, for the record.
    pub fn cgroup_path(&self) -> Option<String> {
        match self {
            Containment::Cgroup(cgroup) => Some(cgroup.path().to_string_lossy().into_owned()),
            Containment::Group => None,
        }
    }
}

/// Kills what is left in the cgroup of a dead supervisor, waits until it is empty,
/// removes it, and returns the PIDs that were in it.
///
/// Refuses (`InvalidInput`) a path that is not a cgroup2 directory named exactly
/// after `marker` ([`TreeMarker::cgroup_name`]) below a cgroup2 mount, and a supervisor that is still
/// alive: a record's word alone never leads to a kill. A cgroup that no longer
/// exists has nothing left: `Ok` with no PIDs.
pub fn kill_leftover_cgroup(path: &str, marker: TreeMarker) -> io::Result<Vec<Pid>> {
    if marker.0.is_running() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the supervisor of {path} is alive"),
        ));
    }
    let Some(cgroup) = Cgroup::open_existing(Path::new(path), &marker.cgroup_name())? else {
        return Ok(Vec::new());
    };
    let found = cgroup.members()?;
    if !cgroup.kill()? {
        for &pid in &found {
            let _ = signal_member(&cgroup, pid, sys::SIGKILL);
        }
    }
    if !cgroup.wait_empty(LEFTOVER_KILL_WAIT)? {
        return Err(io::Error::other(format!(
            "processes in {path} outlived SIGKILL for {LEFTOVER_KILL_WAIT:?}"
        )));
    }
    cgroup.remove()?;
    Ok(found)
}

/// Removes the empty cgroups that dead supervisors left inside our own cgroup
/// (after a SIGKILL or an OOM kill nothing else removes them); returns their paths.
/// Only empty ones: the kernel refuses to remove a cgroup that still holds
/// processes, and those leftovers are for `gc` to kill, from their record.
pub fn remove_dead_cgroups() -> Vec<PathBuf> {
    let Ok(cgroups) = sys::own_child_cgroups() else {
        return Vec::new();
    };
    cgroups
        .into_iter()
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .and_then(TreeMarker::of_cgroup_name)
                .is_some_and(|marker| !marker.0.is_running())
        })
        .filter(|path| sys::remove_empty_cgroup(path).is_ok())
        .collect()
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
    fn a_live_supervisor_is_refused() {
        let me = SupervisorId::current().unwrap();
        let err = kill_leftover_cgroup("/sys/fs/cgroup/ocwrap-x", me.marker()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
