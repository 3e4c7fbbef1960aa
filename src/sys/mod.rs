//! The platform seam: every `unsafe` block and every `cfg(target_os = …)` of ocwrap
//! lives below this module, and nowhere else.
//!
//! Each platform file offers the same names (`proc_info`, `signal`, `PidFd`, …) so the
//! rest of the crate is portable code. Linux is the only platform built and tested;
//! another one gets its own file here, and until it has one the build says so rather
//! than producing a binary nobody has run.

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod os;

#[cfg(target_os = "linux")]
#[path = "cgroup_linux.rs"]
mod cgroup;

#[cfg(target_os = "linux")]
pub use cgroup::{Cgroup, own_child_cgroups, remove_empty_cgroup};

#[cfg(target_os = "linux")]
#[path = "tcp_linux.rs"]
mod tcp;

#[cfg(target_os = "linux")]
pub use tcp::established_connections;

#[cfg(not(target_os = "linux"))]
compile_error!(
    "ocwrap is built and tested on Linux only; another platform needs its own src/sys module"
);

pub use os::*;
