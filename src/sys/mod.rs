//! The platform seam: every `unsafe` block and every `cfg(target_os = …)` of ocwrap
//! lives below this module, and nowhere else.
//!
//! This file is the contract: what every platform provides, one group per concern,
//! named as the files of each platform's folder are (`proc`, `wait`, `signal`,
//! `spawn`, `contain`, `leftover`, `fs`, `control`, `handoff`, `net`, `ready`,
//! `memory`, `diag`) and as the rows
//! of the seam table in docs/DESIGN.md ("Platform seam") are. Linux (`linux/`) is
//! built and tested; macOS (`macos/`) is type-checked and linted by
//! `shell/xcheck.sh` but has never run; what the two answer alike is `unix/`.
//! Windows (`windows/`) is built and run under Wine by `shell/windows.sh`. A name
//! missing on one platform fails to compile here. Any other platform fails at
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
mod windows;
#[cfg(windows)]
use windows as os;

// What Linux and macOS answer alike (descriptors, POSIX signals, Unix sockets). On
// Windows the same names come from `windows/`.
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as family;
#[cfg(windows)]
use windows as family;

// What macOS and Windows do not build, as types with no value.
#[cfg(not(target_os = "linux"))]
mod unbuilt;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
compile_error!(
    "ocwrap is built for Linux (tested), macOS (type-checked only) and Windows (run under Wine); another platform needs its own src/sys module"
);

// proc: who is this process (start time, parent, group, state), which processes run.
pub use family::parent_pid;
pub use os::{
    all_processes, children, children_listed, environ_has, is_kernel_thread, proc_info,
    proc_lookup, process_names,
};

// wait: has this process gone; the loop's wait sources and sets of them.
pub use family::{AsWaitable, Interest, Waitable, poll, poll_readable, reap};
pub use os::{EventSet, PidFd, pidfd_supported};

// signal: the vocabulary (`process::Signal`, as `SIG*`) and its numbers here, where
// signals have any; signalling a process or a group (a pinned process through
// `PidFd::send_signal`, in each platform's `signal.rs`), ocwrap's own stop requests.
pub use family::{
    SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1,
    SIGUSR2, SIGWINCH, Signal, SignalInbox, exit_signal, ignore_signal, signal, signal_number,
};

// spawn: the server (which cannot outlive us), the detached supervisor, logs, stdio.
pub use family::{
    Detached, ServerChild, command_not_executable, command_not_found, ensure_stdio_open, open_log,
    spawn_detached, spawn_server,
};
pub use os::{GUARDING, become_child_subreaper};

/// Where a supervisor starts a guard (`GUARDING`; see `crate::guard`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarding {
    /// Always: nothing else ends the tree when the supervisor is killed (macOS).
    Always,
    /// With `--guard`: a parent-death signal ends the server, the guard also
    /// reaches what left its group (Linux).
    OnRequest,
    /// Never: the containment dies with the supervisor (Windows' job object).
    NotNeeded,
}

// contain: the tree's containment (Linux's cgroup, Windows' job object, macOS: none).
pub use os::Cgroup;

// leftover: what a dead supervisor's containment left. A Linux cgroup outlives its
// supervisor; a Windows job dies with its last handle and macOS has no containment,
// so there the answer is that nothing is left.
pub use os::{kill_leftover, remove_empty_leftovers};

// fs: the state dir's place and privacy, safe entry opens, file identity, locks,
// watching for removal or replacement.
pub use family::{
    FileId, create_private_dir, default_state_dir, file_kind, is_resource_shortage,
    is_symlink_refusal, lock_exclusive, lock_shared, private_dir_problem, state_entry_options,
    try_lock_exclusive, try_lock_shared,
};
pub use os::FileWatch;

// control: the control channel, who is at its other end, descriptor limits.
pub use family::{
    CONTROL_BACKLOG, ControlListener, ControlStream, DescriptorReserve, MAX_CONTROL_PATH, UserId,
    current_user, descriptor_limit, is_out_of_descriptors,
};

// handoff: the channel from `up` to `__supervise`.
pub use family::HandoffChannel;

// net: the readiness probe's connection, established TCP connections on a port
// (Linux and Windows read the host's tables; macOS the descriptors of the tree the
// caller names).
pub use family::{
    Connection, MAX_SOCKET_PATH, is_socket, socket_connect, socket_in_the_way, socket_name_problem,
};
pub use os::{SOCKET_CONNECTIONS_COUNTED, established_connections, socket_connections};

// ready: readiness the server declares (a notify socket, a descriptor's pipe),
// where built.
pub use family::{FD_READINESS, ReadyFd};
pub use os::{NOTIFY_READINESS, NotifySocket};

/// One message read from the notify socket.
#[derive(Debug)]
pub struct NotifyMessage {
    /// How many bytes of the buffer it filled.
    pub len: usize,
    /// It was larger than the buffer (the rest is lost).
    pub truncated: bool,
    /// Who sent it, as the kernel says.
    pub sender: Option<crate::process::Pid>,
}

// memory: giving back the code start-up mapped.
pub use os::release_startup_pages;

// diag: ocwrap's own stderr, a line at a time, never blocked by a stalled reader.
pub use family::write_stderr_line;

/// Helpers for the tests and `src/bin/ocwrap-fixture.rs` only: no product module
/// uses them.
#[doc(hidden)]
pub mod fixture {
    pub use super::family::{
        catch_signal, new_session, on_signals, send_notify, serve_local_socket, set_arg0,
        write_descriptor,
    };
    #[cfg(unix)]
    pub use super::os::voluntary_context_switches;
    pub use super::os::{
        exit_this_thread, fork_idle_children, is_no_such_process, pending_signals,
    };
    #[cfg(unix)]
    pub use super::unix::{effective_uid, set_nonblocking, stop_process};

    /// Held by every unit test that opens or closes a loopback TCP socket, so
    /// that a test reading the kernel's socket tables sees no one else's churn.
    #[cfg(test)]
    pub(crate) static LOOPBACK_TCP: std::sync::Mutex<()> = std::sync::Mutex::new(());
}

// Portable parsing of a macOS answer: built for macOS (as `macos::procargs`), and for
// the tests everywhere else, so that Linux runs the parser macOS relies on. The file
// declares no modules, so `#[path]` cannot misplace any.
#[cfg(all(test, not(target_os = "macos")))]
#[path = "macos/procargs.rs"]
mod procargs;
// Likewise the layout of macOS's socket answers and the count of a port's
// connections read from them.
#[cfg(all(test, not(target_os = "macos")))]
#[path = "macos/sockinfo.rs"]
mod sockinfo;
