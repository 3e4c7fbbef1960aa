//! The Windows side of the platform seam: handles, job objects and named pipes.
//! One file per concern, named as in the other platforms' folders; what answers
//! each of the seam's questions here is in `docs/DESIGN.md`, section "Platform
//! seam". This file holds the helpers those files share, and what the seam offers.

use std::ffi::OsStr;
use std::io;
use std::mem::zeroed;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{
    AsRawHandle, BorrowedHandle, HandleOrInvalid, HandleOrNull, OwnedHandle, RawHandle,
};
use std::time::Duration;

use windows_sys::Win32::Foundation::{FILETIME, HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::SystemInformation::GetSystemTimeAsFileTime;
use windows_sys::Win32::System::Threading::{CreateEventW, INFINITE, WaitForSingleObject};

mod contain;
mod control;
mod diag;
mod fixture;
mod fs;
mod handoff;
mod leftover;
mod memory;
mod net;
mod pipe;
mod proc;
mod ready;
mod security;
mod signal;
mod spawn;
mod wait;

// What the seam offers, one group per concern. Items with no Windows meaning keep
// their Unix signature and say so: no-ops where the job object already gives the
// guarantee (`become_child_subreaper`), `Unsupported` where the caller asked for
// something Windows cannot do (`new_session`, a signal other than SIGKILL to one
// process). Every `unsafe` block carries a `// SAFETY:` comment.

// Who a process is.
pub use proc::{
    all_processes, children, children_listed, environ_has, is_kernel_thread, parent_pid, proc_info,
    proc_lookup, process_names,
};

// Waiting: process handles, wait sources, sets of them.
pub use wait::{
    AsWaitable, EventSet, Interest, PidFd, Waitable, pidfd_supported, poll, poll_readable, reap,
};

// Signals: the vocabulary (without numbers), their delivery, ocwrap's own stop
// requests.
pub use signal::{
    SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1,
    SIGUSR2, SIGWINCH, Signal, SignalInbox, exit_signal, ignore_signal, signal, signal_number,
};

// Spawning the server, and the detached supervisor.
pub use spawn::{
    Detached, GUARDING, ServerChild, become_child_subreaper, command_not_executable,
    command_not_found, ensure_stdio_open, open_log, spawn_detached, spawn_server,
};

// Containment: the job object (the seam's `Cgroup`); what a dead supervisor's job
// left (nothing).
pub use contain::Cgroup;
pub use leftover::{kill_leftover, remove_empty_leftovers};

// The state dir: its place and privacy, entries, file identity, locks, watching.
pub use fs::{
    FileId, FileWatch, create_private_dir, default_state_dir, file_kind, is_resource_shortage,
    is_symlink_refusal, lock_exclusive, lock_shared, private_dir_problem, state_entry_options,
    try_lock_exclusive, try_lock_shared,
};

// The control channel, who is at its other end, and descriptor limits.
pub use control::{
    CONTROL_BACKLOG, ControlListener, ControlStream, DescriptorReserve, MAX_CONTROL_PATH,
    descriptor_limit, is_out_of_descriptors,
};
pub use security::{UserId, current_user};

// The handoff from `up` to `__supervise`.
pub use handoff::HandoffChannel;

// Readiness probes and established connections.
pub use net::{
    Connection, MAX_SOCKET_PATH, SOCKET_CONNECTIONS_COUNTED, established_connections, is_socket,
    socket_connect, socket_connections, socket_in_the_way, socket_name_problem,
};

// Declared readiness: neither form is built here.
pub use ready::{FD_READINESS, NOTIFY_READINESS, NotifySocket, ReadyFd};

// Memory: nothing to give back.
pub use memory::release_startup_pages;

// ocwrap's own diagnostics.
pub use diag::write_stderr_line;

// Test fixtures only: used by `src/bin/ocwrap-fixture.rs` and the tests, by no
// product module.
pub use fixture::{
    catch_signal, exit_this_thread, fork_idle_children, is_no_such_process, new_session,
    on_signals, pending_signals, send_notify, serve_local_socket, set_arg0, write_descriptor,
};

// ---------------------------------------------------------------------------
// Small helpers: every Win32 return convention turned into io::Result once.

/// A NUL-terminated UTF-16 copy of `s`, as the `…W` functions want.
fn wide(s: impl AsRef<OsStr>) -> Vec<u16> {
    s.as_ref().encode_wide().chain(Some(0)).collect()
}

/// A `BOOL`-returning call's result.
fn check(ok: windows_sys::core::BOOL) -> io::Result<()> {
    if ok != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes ownership of a handle from a function that returns NULL on failure.
///
/// # Safety
/// `raw` must be NULL or a handle that the caller owns and nobody else closes.
unsafe fn owned_or_null(raw: HANDLE) -> io::Result<OwnedHandle> {
    // SAFETY: forwarded from the caller: `raw` is NULL or ours alone.
    let handle = unsafe { HandleOrNull::from_raw_handle(raw as RawHandle) };
    OwnedHandle::try_from(handle).map_err(|_| io::Error::last_os_error())
}

/// Takes ownership of a handle from a function that returns `INVALID_HANDLE_VALUE`
/// on failure (`CreateFileW`, `CreateNamedPipeW`, `CreateToolhelp32Snapshot`).
///
/// # Safety
/// `raw` must be `INVALID_HANDLE_VALUE` or a handle the caller owns alone.
unsafe fn owned_or_invalid(raw: HANDLE) -> io::Result<OwnedHandle> {
    // SAFETY: forwarded from the caller: `raw` is INVALID_HANDLE_VALUE or ours alone.
    let handle = unsafe { HandleOrInvalid::from_raw_handle(raw as RawHandle) };
    OwnedHandle::try_from(handle).map_err(|_| io::Error::last_os_error())
}

fn raw(handle: &impl AsRawHandle) -> HANDLE {
    handle.as_raw_handle() as HANDLE
}

/// A manual-reset event, initially not signalled (see [`Waitable`] for why never
/// auto-reset).
fn manual_event() -> io::Result<OwnedHandle> {
    // SAFETY: no security attributes, no name; the new handle is ours alone.
    unsafe { owned_or_null(CreateEventW(std::ptr::null(), 1, 0, std::ptr::null())) }
}

/// Whether a waitable handle is signalled now, without waiting.
fn is_signalled(handle: BorrowedHandle<'_>) -> bool {
    // SAFETY: a valid handle borrowed for the call; a zero timeout never blocks.
    unsafe { WaitForSingleObject(raw(&handle), 0) == WAIT_OBJECT_0 }
}

fn filetime(ft: FILETIME) -> u64 {
    (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime)
}

/// Now, in the unit of [`StartTime`](crate::process::StartTime) (100 ns since 1601,
/// UTC).
fn now_filetime() -> u64 {
    // SAFETY: FILETIME is plain data; the call writes it.
    let mut ft: FILETIME = unsafe { zeroed() };
    // SAFETY: one FILETIME that lives for the call.
    unsafe { GetSystemTimeAsFileTime(&mut ft) };
    filetime(ft)
}

/// A `Duration` as a wait's milliseconds, rounded up so that a 0.4 ms wait does not
/// become a busy 0 ms loop, and kept below `INFINITE`.
fn wait_millis(timeout: Option<Duration>) -> u32 {
    match timeout {
        None => INFINITE,
        Some(d) => d.as_micros().div_ceil(1000).min(u128::from(INFINITE - 1)) as u32,
    }
}

/// The exit code given to processes we kill (`TerminateProcess`,
/// `TerminateJobObject`): 128 + SIGKILL, as a shell reports a killed process.
const KILLED_EXIT_CODE: u32 = 137;
