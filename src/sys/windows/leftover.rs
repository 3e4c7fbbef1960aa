//! What a dead supervisor's containment left, on Windows: nothing. The server's job
//! object has one handle, the supervisor's, and `KILL_ON_JOB_CLOSE`: when the
//! supervisor dies, however, the kernel closes the handle and terminates every
//! member, and an unnamed job cannot be reached by anyone after that. (Linux's
//! cgroup outlives its supervisor; see `sys/linux/leftover.rs`.) See
//! `docs/DESIGN.md`, section "Containment".

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::Pid;

/// No job outlives its supervisor: nothing was left at any path, so nothing is
/// killed and no PID is returned.
pub fn kill_leftover(_path: &Path, _name: &str, _wait: Duration) -> io::Result<Vec<Pid>> {
    Ok(Vec::new())
}

/// No job outlives its supervisor: none to remove.
pub fn remove_empty_leftovers(_is_dead: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    Vec::new()
}
