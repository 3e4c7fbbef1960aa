//! What only the tests and `src/bin/ocwrap-fixture.rs` use: fixture helpers that
//! Windows mostly cannot offer (no fork, no sessions, no `argv[0]`, no signals to
//! record), and the unit tests' scratch directories.

use std::io;
use std::process::Command;

use windows_sys::Win32::System::Console::{CTRL_BREAK_EVENT, CTRL_C_EVENT, SetConsoleCtrlHandler};

use super::check;
use super::signal::{SIGINT, SIGTERM, Signal};
use crate::process::Pid;

/// Not offered: Windows passes one command line, whose first word the program
/// parses itself; there is no separate argv[0] to set.
pub fn set_arg0(_command: &mut Command, _arg0: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "Windows has no argv[0] apart from the program",
    ))
}

/// Test fixtures: not offered (a process can only be sent console events, which
/// Wine does not deliver to groups).
pub fn on_signals(
    _signals: &[Signal],
    _handler: impl FnMut(Signal) + Send + 'static,
) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no signals on Windows",
    ))
}

/// Test fixtures: ignores the console's requests to stop (Ctrl-Break, what
/// [`signal`] sends for SIGTERM, and Ctrl-C from the console), as a server with a slow or broken
/// shutdown does. Other signals are never delivered here: nothing to catch.
///
/// [`signal`]: fn@super::signal
pub fn catch_signal(signal: Signal) -> io::Result<()> {
    unsafe extern "system" fn ignore_stop(event: u32) -> windows_sys::core::BOOL {
        i32::from(event == CTRL_C_EVENT || event == CTRL_BREAK_EVENT)
    }
    match signal {
        // SAFETY: registers a handler that touches no memory and may run on any
        // thread.
        SIGINT | SIGTERM => check(unsafe { SetConsoleCtrlHandler(Some(ignore_stop), 1) }),
        _ => Ok(()),
    }
}

/// Test fixtures only: Windows has no sessions to start, and a job member cannot
/// break away from the job (breakaway is not allowed). So nothing is done: the
/// fixture's escape there is a grandchild whose parent has exited, an orphan
/// that the job still holds, which is what a Windows server's escape amounts to.
pub fn new_session() -> io::Result<()> {
    Ok(())
}

/// Test fixtures only: not offered (no `fork`).
pub fn fork_idle_children(_count: usize) -> io::Result<Vec<Pid>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no fork on Windows",
    ))
}

/// Test fixture: ends the calling thread and nothing else.
pub fn exit_this_thread() -> ! {
    // SAFETY: ExitThread ends only the calling thread and never returns; the
    // other threads own everything they use.
    unsafe { windows_sys::Win32::System::Threading::ExitThread(0) }
}

/// Test fixtures only: nothing is ever pending (no signals).
pub fn pending_signals(_pid: Pid) -> Option<u64> {
    None
}

/// A fresh scratch directory for one unit test.
#[cfg(test)]
pub(super) fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ocwrap-sys-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Test fixtures: a broker's local socket is not built on Windows.
pub fn serve_local_socket(_path: &std::path::Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Test fixtures: there is no notify socket on Windows.
pub fn send_notify(_path: &std::path::Path, _message: &[u8]) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Test fixtures: there is no readiness descriptor on Windows.
pub fn write_descriptor(_number: i32, _bytes: &[u8]) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Tests: whether pinning `pid` (`PidFd::open`) failed because no process has
/// the PID (`OpenProcess` says `ERROR_INVALID_PARAMETER` then).
pub fn is_no_such_process(_pid: Pid, error: &io::Error) -> bool {
    error.raw_os_error() == Some(windows_sys::Win32::Foundation::ERROR_INVALID_PARAMETER as i32)
}
