//! What a dead supervisor's containment left, on macOS: nothing, because macOS has
//! no containment that outlives a process (no cgroups; the process group dies with
//! its members). What a dead supervisor's tree left is found by its tree marker, in
//! the portable sweep. Type-checked only. See `docs/DESIGN.md`, section
//! "Containment".

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::contain::NO_CGROUPS;
use crate::process::Pid;

/// A record written on macOS never names a cgroup, so one that does is refused, as
/// Linux refuses a path that is not an ocwrap cgroup (`InvalidInput`).
pub fn kill_leftover(path: &Path, _name: &str, _wait: Duration) -> io::Result<Vec<Pid>> {
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is not an ocwrap cgroup: {NO_CGROUPS}", path.display()),
    ))
}

/// No cgroups, so none a dead supervisor left.
pub fn remove_empty_leftovers(_is_dead: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    Vec::new()
}
