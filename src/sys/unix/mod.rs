//! What Linux and macOS answer alike, with Unix facilities, one file per concern: wait
//! sources are descriptors, signals are POSIX's, the control channel is a Unix
//! socket, the handoff to `__supervise` a socket pair on descriptor 3, the state dir
//! is checked by owner uid and mode bits. What differs is `sys/linux/` and `sys/macos/`
//! (here `crate::sys::os`); see `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

mod control;
mod diag;
mod fixture;
mod fs;
mod handoff;
mod net;
mod proc;
mod ready;
mod signal;
mod spawn;
mod wait;

// Who a process is: what the per-OS `proc.rs` does not answer.
pub use proc::parent_pid;

// Waiting: descriptors, `poll`, reaping our child.
pub use wait::{AsWaitable, Interest, Waitable, poll, poll_readable, reap};

// Signals: the vocabulary and its numbers, sending, the supervisor's inbox, ignoring.
pub use signal::{
    SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1,
    SIGUSR2, SIGWINCH, Signal, SignalInbox, exit_signal, ignore_signal, signal, signal_number,
};
// The numbers themselves, for `sys/linux/` and `sys/macos/` only (macOS's `PidFd`
// signals by PID).
pub(in crate::sys) use signal::number as signal_to_number;
#[cfg(target_os = "macos")]
pub(in crate::sys) use signal::signal_by_number;

// Spawning: the server, the detached supervisor, the log, ocwrap's own stdio.
pub use spawn::{
    Detached, ServerChild, command_not_executable, command_not_found, ensure_stdio_open, open_log,
    spawn_detached, spawn_server,
};

// ocwrap's own diagnostics.
pub use diag::write_stderr_line;

// The state dir: its place and checks, safe entry opens, file identity, locks.
pub use fs::{
    FileId, create_private_dir, default_state_dir, file_kind, is_resource_shortage,
    is_symlink_refusal, lock_exclusive, lock_shared, private_dir_problem, state_entry_options,
    try_lock_exclusive, try_lock_shared,
};

// The control channel: its socket, the reserve descriptors, users.
pub use control::{
    CONTROL_BACKLOG, ControlListener, ControlStream, DescriptorReserve, MAX_CONTROL_PATH, UserId,
    current_user, descriptor_limit, is_out_of_descriptors,
};

// The handoff channel on descriptor 3.
pub use handoff::HandoffChannel;

// The network: the readiness probe's connections.
pub use net::{
    Connection, MAX_SOCKET_PATH, is_socket, socket_connect, socket_in_the_way, socket_name_problem,
};

// Declared readiness: the pipe behind `--ready fd:N`.
pub use ready::{FD_READINESS, ReadyFd};

// For the tests and `src/bin/ocwrap-fixture.rs` only (with `set_nonblocking` and
// `effective_uid` below, which this folder uses too).
pub use fixture::{
    catch_signal, new_session, on_signals, send_notify, serve_local_socket, set_arg0, stop_process,
    write_descriptor,
};

// ---------------------------------------------------------------------------
// Helpers the concerns share. Outside `sys`, only the tests use them.

/// Sets or clears `O_NONBLOCK` on a descriptor (tests fill pipes with it).
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on a descriptor the caller borrows.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags == -1 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if libc::fcntl(raw, libc::F_SETFL, flags) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Arranges for descriptor `raw` of this process to be descriptor `number` of the
/// command spawned next, without close-on-exec: `dup2` between fork and exec, or,
/// when it already has that number, its close-on-exec flag cleared. `raw` must
/// stay open until the spawn returns. (A `pre_exec` hook makes std fork and exec
/// rather than `posix_spawn`, so the hook does run in the child.)
pub(in crate::sys) fn pass_as(command: &mut std::process::Command, raw: RawFd, number: RawFd) {
    use std::os::unix::process::CommandExt;
    let hook = move || -> io::Result<()> {
        // SAFETY: dup2 and fcntl are async-signal-safe and touch only the
        // descriptor table; `raw` is open in this (forked) process.
        unsafe {
            if raw == number {
                if libc::fcntl(raw, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(raw, number) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the hook above only makes async-signal-safe calls.
    unsafe {
        command.pre_exec(hook);
    }
}

/// Turns on the `SOL_SOCKET` option `option` (an int flag) of socket `fd`.
pub(in crate::sys) fn turn_on_socket_option(
    fd: BorrowedFd<'_>,
    option: libc::c_int,
) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads one int from `on`, which lives for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The effective user ID of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}
