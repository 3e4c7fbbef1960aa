//! Containment, on macOS, which has no cgroups: [`Cgroup`] exists so that the portable
//! code compiles, but no value of it can be made, so `--contain auto` takes the
//! process group and `--contain cgroup` is an error. Type-checked only. See
//! `docs/DESIGN.md`, sections "Containment" and "Platform seam".

use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::process::Command;

use crate::process::Pid;

/// Why there is no [`Cgroup`] on macOS, as its errors say.
pub(super) const NO_CGROUPS: &str =
    "macOS has no cgroups (--contain group or auto contains by process group)";

/// cgroup containment does not exist on macOS: nothing there holds a process tree
/// that its members cannot leave. The type exists so that the portable code
/// compiles, but no value of it can be made: [`Cgroup::create`] is always an
/// `Unsupported` error, so `--contain auto` falls back to the process group and
/// `--contain cgroup` fails with that error. The methods are unreachable; the
/// compiler proves it (`Infallible` has no values).
#[derive(Debug)]
pub struct Cgroup {
    never: std::convert::Infallible,
}

impl Cgroup {
    /// Always `Unsupported` (see the type).
    pub fn create(_name: &str) -> io::Result<Cgroup> {
        Err(io::Error::new(io::ErrorKind::Unsupported, NO_CGROUPS))
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

    pub fn remove(self) -> io::Result<()> {
        match self.never {}
    }
}
