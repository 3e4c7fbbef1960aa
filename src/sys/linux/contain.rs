//! Containment, on Linux: the server's own cgroup v2 child cgroup, which no
//! descendant can leave by `setsid`, double fork or reparenting, which the kernel
//! empties with one write (`cgroup.kill`) and announces empty (`cgroup.events`).
//! The choice between cgroup and process group is `crate::contain`'s; see
//! `docs/DESIGN.md`, sections "Containment" and "Platform seam".

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::Pid;

/// `statfs(2)` type of a cgroup2 file system.
const CGROUP2_SUPER_MAGIC: libc::c_long = 0x6367_7270;

/// A cgroup v2 directory that holds (or held) a server's tree.
///
/// The cgroup2 mount is found in `/proc/self/mounts` and ocwrap's own cgroup in
/// `/proc/self/cgroup` (`0::/path`), never at a fixed path. The child cgroup is made
/// inside ocwrap's own one: moving a process between cgroups needs write access to
/// their common ancestor's `cgroup.procs`, which that keeps within what ocwrap
/// already owns. cgroup v2 forbids enabling controllers in a cgroup that holds
/// processes, but none is needed: `cgroup.procs`, `cgroup.kill` and
/// `cgroup.events` are core files present in every cgroup.
#[derive(Debug)]
pub struct Cgroup {
    /// Absolute path, below the cgroup2 mount.
    path: PathBuf,
    /// The path as `/proc/PID/cgroup` names it (relative to the mount's root).
    name_in_proc: String,
    /// `cgroup.events`, re-read for `populated` and watched for `POLLPRI`.
    events: File,
    /// Whether `cgroup.kill` exists (Linux ≥ 5.14).
    can_kill: bool,
    removed: bool,
}

impl Cgroup {
    /// Creates the child cgroup `name` inside this process's own cgroup, after
    /// checking that a process can be moved into it from there.
    pub fn create(name: &str) -> io::Result<Cgroup> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a cgroup name",
            ));
        }
        let (mount, parent) = own_cgroup_dir()?;
        // Writing the server into the new cgroup needs write access to our own
        // cgroup's cgroup.procs too (the common ancestor); find out now, not after fork.
        OpenOptions::new()
            .write(true)
            .open(parent.join("cgroup.procs"))?;
        let path = parent.join(name);
        fs::DirBuilder::new().mode(0o755).create(&path)?;
        match Cgroup::at(&mount, path.clone()) {
            Ok(cgroup) => Ok(cgroup),
            Err(e) => {
                let _ = fs::remove_dir(&path);
                Err(e)
            }
        }
    }

    pub(super) fn at(mount: &Path, path: PathBuf) -> io::Result<Cgroup> {
        let relative = path
            .strip_prefix(mount)
            .map_err(|_| io::Error::other("cgroup outside its mount"))?;
        let name_in_proc = format!("/{}", relative.display());
        let events = File::open(path.join("cgroup.events"))?;
        let can_kill = path.join("cgroup.kill").is_file();
        Ok(Cgroup {
            path,
            name_in_proc,
            events,
            can_kill,
            removed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `cgroup.kill` exists, so that [`Cgroup::kill`] needs no PIDs.
    pub fn can_kill(&self) -> bool {
        self.can_kill
    }

    /// Makes the spawned command enter this cgroup between fork and exec, before it
    /// runs any code of its own: the child writes `0` (itself) into `cgroup.procs`
    /// through a descriptor opened here, before the fork (close-on-exec, so the
    /// server never inherits it).
    pub fn enter_before_exec(&self, command: &mut Command) -> io::Result<()> {
        let procs: OwnedFd = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(self.path.join("cgroup.procs"))?
            .into();
        let hook = move || -> io::Result<()> {
            // SAFETY: write(2) is async-signal-safe; the descriptor and the one-byte
            // buffer are valid for the call, and nothing else runs between fork and exec.
            let written = unsafe { libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) };
            if written == 1 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        // SAFETY: the hook above only makes one async-signal-safe call (see there).
        unsafe {
            command.pre_exec(hook);
        }
        Ok(())
    }

    /// The processes in the cgroup now (`cgroup.procs`).
    pub fn members(&self) -> io::Result<Vec<Pid>> {
        let text = fs::read_to_string(self.path.join("cgroup.procs"))?;
        Ok(text
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .filter_map(Pid::new)
            .collect())
    }

    /// Whether `pid` is in this cgroup now (its `/proc/PID/cgroup` line `0::…`):
    /// false when it is gone, an error when the look could not be made.
    pub fn holds(&self, pid: Pid) -> io::Result<bool> {
        match fs::read_to_string(format!("/proc/{pid}/cgroup")) {
            Ok(text) => Ok(text
                .lines()
                .any(|l| l.strip_prefix("0::") == Some(self.name_in_proc.as_str()))),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether any process is left (`populated 1` in `cgroup.events`). Reading the
    /// file also re-arms its change event for [`Cgroup::events_fd`].
    pub fn is_populated(&self) -> io::Result<bool> {
        let mut text = [0u8; 256];
        let n = self.events.read_at(&mut text, 0)?;
        let text = std::str::from_utf8(&text[..n]).map_err(io::Error::other)?;
        text.lines()
            .find_map(|l| l.strip_prefix("populated "))
            .map(|v| v.trim() == "1")
            .ok_or_else(|| io::Error::other("cgroup.events has no populated line"))
    }

    /// `cgroup.events`, which signals a change with `POLLPRI` (see
    /// [`crate::sys::EventSet::watch_change`]).
    pub fn events_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }

    /// SIGKILLs every process in the cgroup at once (`cgroup.kill`), including one
    /// being forked meanwhile. `Ok(false)` when the kernel has no `cgroup.kill`.
    pub fn kill(&self) -> io::Result<bool> {
        if !self.can_kill {
            return Ok(false);
        }
        fs::write(self.path.join("cgroup.kill"), b"1")?;
        Ok(true)
    }

    /// Removes the emptied cgroup, and first any cgroup a member made inside it
    /// (a nested ocwrap, a container runtime).
    pub fn remove(mut self) -> io::Result<()> {
        self.removed = true;
        remove_tree(&self.path)
    }
}

fn remove_tree(path: &Path) -> io::Result<()> {
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    fs::remove_dir(path)
}

impl Drop for Cgroup {
    /// A cgroup not removed explicitly (a failed start) is removed if empty.
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_tree(&self.path);
        }
    }
}

/// The cgroup2 mount that holds this process's own cgroup, and that cgroup's
/// directory below it.
pub(super) fn own_cgroup_dir() -> io::Result<(PathBuf, PathBuf)> {
    let own = own_cgroup()?;
    mounts()?
        .into_iter()
        .map(|mount| {
            let dir = mount.join(own.trim_start_matches('/'));
            (mount, dir)
        })
        .find(|(_, dir)| dir.join("cgroup.procs").is_file())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup2 mount holds our cgroup"))
}

/// Whether `path` is on a cgroup2 file system (`statfs(2)`).
pub(super) fn is_cgroup2(path: &Path) -> io::Result<bool> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with a NUL byte"))?;
    // SAFETY: statfs is plain data; zeroed is a valid value to be overwritten.
    let mut info: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statfs struct, both valid for the call.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut info) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.f_type as libc::c_long == CGROUP2_SUPER_MAGIC)
}

/// This process's cgroup v2 path, relative to the cgroup2 mount's root.
fn own_cgroup() -> io::Result<String> {
    parse_own_cgroup(&fs::read_to_string("/proc/self/cgroup")?)
        .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "no cgroup v2 entry for us"))
}

fn parse_own_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|p| p.starts_with('/'))
        .map(str::to_string)
}

/// Every cgroup2 mount point, in `/proc/self/mounts` order.
pub(super) fn mounts() -> io::Result<Vec<PathBuf>> {
    let mut text = String::new();
    File::open("/proc/self/mounts")?.read_to_string(&mut text)?;
    let found = parse_mounts(&text);
    if found.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no cgroup2 file system is mounted",
        ));
    }
    Ok(found)
}

fn parse_mounts(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (_device, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            (kind == "cgroup2").then(|| PathBuf::from(unescape_mount(point)))
        })
        .collect()
}

/// `/proc/self/mounts` writes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup2_mounts_are_found_among_v1_ones_with_escapes() {
        let text = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
                    cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                    cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n\
                    cgroup2 /mnt/with\\040space cgroup2 rw 0 0\n";
        assert_eq!(
            parse_mounts(text),
            [
                PathBuf::from("/sys/fs/cgroup/unified"),
                PathBuf::from("/mnt/with space")
            ]
        );
    }

    #[test]
    fn our_cgroup_is_the_v2_line() {
        let text = "4:memory:/x\n1:cpu:/\n0::/user.slice/session-2.scope\n";
        assert_eq!(
            parse_own_cgroup(text).as_deref(),
            Some("/user.slice/session-2.scope")
        );
        assert_eq!(parse_own_cgroup("4:memory:/x\n"), None);
    }
}
