//! What a dead supervisor's containment left, on Linux: its cgroup. A cgroup outlives
//! the supervisor that made it (SIGKILL, an OOM kill), still holding whatever of the
//! tree was not killed with the server, until someone removes it. A Windows job dies
//! with its last handle and macOS has no containment to leave, so only this folder
//! has anything here. The rules on whose leftovers may be touched are
//! `crate::contain`'s; see `docs/DESIGN.md`, section "Containment".

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use super::contain::{Cgroup, is_cgroup2, mounts, own_cgroup_dir};
use super::wait::PidFd;
use crate::process::{Pid, Signal};

/// Kills what is left in the cgroup at `path`, which must be a cgroup2 directory
/// named exactly `name` below a cgroup2 mount (else `InvalidInput`), waits at most
/// `wait` until it is empty, removes it, and returns the PIDs that were in it. A
/// cgroup that no longer exists has nothing left: `Ok` with no PIDs.
pub fn kill_leftover(path: &Path, name: &str, wait: Duration) -> io::Result<Vec<Pid>> {
    let Some(cgroup) = Cgroup::open_existing(path, name)? else {
        return Ok(Vec::new());
    };
    let found = cgroup.members()?;
    if !cgroup.kill()? {
        for &pid in &found {
            let _ = kill_member(&cgroup, pid);
        }
    }
    if !cgroup.wait_empty(wait)? {
        return Err(io::Error::other(format!(
            "processes in {} outlived SIGKILL for {wait:?}",
            path.display()
        )));
    }
    cgroup.remove()?;
    Ok(found)
}

/// Removes the empty cgroups directly inside our own cgroup whose name `is_dead`
/// says is a dead supervisor's (after a SIGKILL or an OOM kill nothing else removes
/// them); returns their paths. Only empty ones: the kernel refuses (`EBUSY`) to
/// remove a cgroup that still holds processes, and those are for
/// [`kill_leftover`], from their record.
pub fn remove_empty_leftovers(is_dead: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(cgroups) = own_child_cgroups() else {
        return Vec::new();
    };
    cgroups
        .into_iter()
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_dead)
        })
        .filter(|path| fs::remove_dir(path).is_ok())
        .collect()
}

/// SIGKILLs `pid` only if, once pinned by a pidfd, it is still in `cgroup` (a
/// kernel without `cgroup.kill`): a PID read from the cgroup's list and recycled
/// since then is left alone.
fn kill_member(cgroup: &Cgroup, pid: Pid) -> io::Result<()> {
    let pidfd = PidFd::open(pid)?;
    if cgroup.holds(pid)? {
        pidfd.send_signal(Signal::Kill)?;
    }
    Ok(())
}

impl Cgroup {
    /// Opens the existing cgroup at `path` if it is a cgroup2 directory named
    /// exactly `name`, below a cgroup2 mount, with no `.`, `..` or symlink on the
    /// way. `Ok(None)` when it does not exist (any more).
    fn open_existing(path: &Path, name: &str) -> io::Result<Option<Cgroup>> {
        let invalid = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not an ocwrap cgroup: {why}", path.display()),
            )
        };
        if !path.is_absolute()
            || path
                .components()
                .any(|c| !matches!(c, Component::RootDir | Component::Normal(_)))
        {
            return Err(invalid("not a plain absolute path"));
        }
        if path.file_name().map(OsStrExt::as_bytes) != Some(name.as_bytes()) {
            return Err(invalid("not the expected name"));
        }
        let Some(mount) = mounts()?
            .into_iter()
            .find(|m| path.starts_with(m) && path != m)
        else {
            return Err(invalid("not below a cgroup2 mount"));
        };
        match fs::canonicalize(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
            Ok(real) if real != path => return Err(invalid("reached through a symlink")),
            Ok(_) => {}
        }
        if !is_cgroup2(path)? {
            return Err(invalid("not on a cgroup2 file system"));
        }
        Cgroup::at(&mount, path.to_path_buf()).map(Some)
    }

    /// Waits until the cgroup is empty, at most `timeout`; returns whether it is.
    fn wait_empty(&self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_populated()? {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let mut pfd = libc::pollfd {
                fd: self.events_fd().as_raw_fd(),
                events: libc::POLLPRI,
                revents: 0,
            };
            let millis = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd for the call.
            if unsafe { libc::poll(&mut pfd, 1, millis) } < 0 {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// The cgroups directly inside this process's own cgroup.
fn own_child_cgroups() -> io::Result<Vec<PathBuf>> {
    let (_, own) = own_cgroup_dir()?;
    Ok(fs::read_dir(own)?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_path_named_as_expected_is_opened() {
        for (path, name) in [
            ("relative/ocwrap-1.2", "ocwrap-1.2"),
            ("/sys/fs/cgroup/unified/../ocwrap-1.2", "ocwrap-1.2"),
            ("/sys/fs/cgroup/unified/ocwrap-1.3", "ocwrap-1.2"),
            ("/tmp/ocwrap-1.2", "ocwrap-1.2"),
        ] {
            let err = Cgroup::open_existing(Path::new(path), name).expect_err(path);
            assert_ne!(err.kind(), io::ErrorKind::NotFound, "{path}");
        }
    }
}
