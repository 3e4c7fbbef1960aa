//! The platform seam: every `unsafe` block and every `cfg(target_os = …)` of ocwrap
//! lives below this module, and nowhere else.
//!
//! Each platform file offers the same names (`proc_info`, `signal`, `PidFd`, …) so the
//! rest of the crate is portable code. Linux is built and tested. macOS has its own
//! file, which `shell/xcheck.sh` type-checks and lints but which has never run (no
//! Mac runs the tests). Windows (`windows.rs`: handles, job objects, named pipes) is
//! built and run under Wine by `shell/windows.sh`. Any other platform fails at
//! compile time rather than producing a binary nobody has run.

// No `#[path]`: under `#[path = "x.rs"] mod os;` a nested `mod y;` would resolve to
// `sys/y.rs`, not `sys/x/y.rs`.
#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
use linux as os;

#[cfg(target_os = "macos")]
mod macos;

#[cfg(target_os = "macos")]
use macos as os;

#[cfg(windows)]
#[path = "windows.rs"]
mod os;

// What Linux and macOS answer alike (descriptors, POSIX signals, Unix sockets).
#[cfg(unix)]
mod unix;

#[cfg(unix)]
pub use unix::*;

// Portable parsing of a macOS answer: built for macOS (as `macos::procargs`), and for
// the tests everywhere else, so that Linux runs the parser macOS relies on. The file
// declares no modules, so `#[path]` cannot misplace any.
#[cfg(all(test, not(target_os = "macos")))]
#[path = "macos/procargs.rs"]
mod procargs;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
compile_error!(
    "ocwrap is built for Linux (tested), macOS (type-checked only) and Windows (run under Wine); another platform needs its own src/sys module"
);

pub use os::*;

/// What the unit tests share across modules.
#[cfg(test)]
pub(crate) mod fixture {
    /// Held by every unit test that opens or closes a loopback TCP socket, so
    /// that a test reading the kernel's socket tables sees no one else's churn.
    pub static LOOPBACK_TCP: std::sync::Mutex<()> = std::sync::Mutex::new(());
}
