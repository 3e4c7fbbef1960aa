//! Containment, on macOS, which has no cgroups: [`Cgroup`] exists so that the portable
//! code compiles, but no value of it can be made, so `--contain auto` takes the
//! process group and `--contain cgroup` is an error. Type-checked only. See
//! `docs/DESIGN.md`, sections "Containment" and "Platform seam".

use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::Pid;

/// Why there is no [`Cgroup`] on macOS, as its errors say.
const NO_CGROUPS: &str = "macOS has no cgroups (--contain group or auto contains by process group)";

/// cgroup containment does not exist on macOS: nothing there holds a process tree
/// that its members cannot leave. The type exists so that the portable code
/// compiles, but no value of it can be made: [`Cgroup::create`] is always an
/// `Unsupported` error, so `--contain auto` falls back to the process group and
/// `--contain cgroup` fails with that error, and [`Cgroup::open_existing`] refuses
/// every path (a record written on macOS never names a cgroup). The methods are
/// unreachable; the compiler proves it (`Infallible` has no values).
#[derive(Debug)]
pub struct Cgroup {
    never: std::convert::Infallible,
}

impl Cgroup {
    /// Always `Unsupported` (see the type).
    pub fn create(_name: &str) -> io::Result<Cgroup> {
        Err(io::Error::new(io::ErrorKind::Unsupported, NO_CGROUPS))
    }

    /// Always refused, as Linux refuses a path that is not an ocwrap cgroup
    /// (`InvalidInput`): nothing on macOS is one.
    pub fn open_existing(path: &Path, _name: &str) -> io::Result<Option<Cgroup>> {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not an ocwrap cgroup: {NO_CGROUPS}", path.display()),
        ))
    }

    pub fn path(&self) -> &Path {
        match self.never {}
    }

    pub fn can_kill(&self) -> bool {
        match self.never {}
    }

    pub fn enter_before_exec(&self, _command: &mut Command) -> io::Result<()> {
        match self.never {}
    }

    pub fn members(&self) -> io::Result<Vec<Pid>> {
        match self.never {}
    }

    pub fn holds(&self, _pid: Pid) -> io::Result<bool> {
        match self.never {}
    }

    pub fn is_populated(&self) -> io::Result<bool> {
        match self.never {}
    }

    pub fn events_fd(&self) -> BorrowedFd<'_> {
        match self.never {}
    }

    pub fn kill(&self) -> io::Result<bool> {
        match self.never {}
    }

    pub fn wait_empty(&self, _timeout: Duration) -> io::Result<bool> {
        match self.never {}
    }

    pub fn remove(self) -> io::Result<()> {
        match self.never {}
    }
}

/// The cgroups inside this process's own cgroup: `Unsupported` on macOS, so the
/// sweep of dead supervisors' cgroups finds none.
pub fn own_child_cgroups() -> io::Result<Vec<PathBuf>> {
    Err(io::Error::new(io::ErrorKind::Unsupported, NO_CGROUPS))
}

/// Removes an empty cgroup: `Unsupported` on macOS (there is none to remove).
pub fn remove_empty_cgroup(_path: &Path) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, NO_CGROUPS))
}
