//! The platform seam: every `unsafe` block and every `cfg(target_os = …)` of ocwrap
//! lives below this module, and nowhere else.
//!
//! Each platform offers the same names (`proc_info`, `signal`, `PidFd`, …) so the
//! rest of the crate is portable code. Linux (`linux/`) is built and tested. macOS
//! (`macos/`) is type-checked and linted by `shell/xcheck.sh` but has never run (no
//! Mac runs the tests); what the two answer alike is `unix/`. Windows (`windows.rs`:
//! handles, job objects, named pipes) is built and run under Wine by
//! `shell/windows.sh`. Any other platform fails at compile time rather than producing
//! a binary nobody has run.

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

// What portable code reaches of `sys/unix/`, one group per concern (`sys/unix/mod.rs`
// says what each holds).
#[cfg(unix)]
pub use unix::parent_pid;

#[cfg(unix)]
pub use unix::{AsWaitable, Interest, Waitable, poll, poll_readable, reap};

#[cfg(unix)]
pub use unix::{
    SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1,
    SIGUSR2, SIGWINCH, Signal, SignalInbox, exit_signal, ignore_signal, signal,
};

#[cfg(unix)]
pub use unix::{
    Detached, ServerChild, command_not_executable, command_not_found, ensure_stdio_open, open_log,
    spawn_detached, spawn_server, write_stderr_line,
};

#[cfg(unix)]
pub use unix::{
    FileId, create_private_dir, default_state_dir, file_kind, is_resource_shortage,
    is_symlink_refusal, lock_exclusive, lock_shared, private_dir_problem, state_entry_options,
    try_lock_exclusive, try_lock_shared,
};

#[cfg(unix)]
pub use unix::{
    ControlListener, ControlStream, DescriptorReserve, MAX_CONTROL_PATH, UserId, current_user,
    descriptor_limit, is_out_of_descriptors,
};

#[cfg(unix)]
pub use unix::{Connection, HandoffChannel};

// For the tests and `src/bin/ocwrap-fixture.rs` only.
#[cfg(unix)]
pub use unix::{catch_signal, effective_uid, new_session, on_signals, set_arg0, set_nonblocking};

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
