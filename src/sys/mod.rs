//! The platform seam: every `unsafe` block and every `cfg(target_os = …)` of ocwrap
//! lives below this module, and nowhere else.
//!
//! Each platform file offers the same names (`proc_info`, `PidFd`, `poll`, …) where
//! they make sense there, so the rest of the crate is portable code. Linux is built
//! and tested; Windows (`windows.rs`: handles, job objects, named pipes) is being
//! brought up and is built and run under Wine by `shell/windows.sh`. Another
//! platform gets its own file here, and until it has one the build says so rather
//! than producing a binary nobody has run.

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod os;

#[cfg(windows)]
#[path = "windows.rs"]
mod os;

#[cfg(not(any(target_os = "linux", windows)))]
compile_error!(
    "ocwrap is built and tested on Linux (and brought up on Windows) only; another platform needs its own src/sys module"
);

pub use os::*;
