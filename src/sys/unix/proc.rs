//! Who a process is, on Unix: what Linux and macOS answer alike, the parent of this
//! process. The rest (`/proc`, `proc_pidinfo`) is per OS (`linux/proc.rs`,
//! `macos/proc.rs`). See `docs/DESIGN.md`, section "Platform seam".

use crate::process::Pid;

/// The parent of this process, as the kernel says now.
pub fn parent_pid() -> Option<Pid> {
    Pid::new(std::os::unix::process::parent_id() as i32)
}
