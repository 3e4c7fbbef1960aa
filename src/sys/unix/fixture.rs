//! Unix helpers for the tests and `src/bin/ocwrap-fixture.rs` only: signal handlers
//! for fixture servers, SIGSTOP, a new session, `argv[0]`. No product module uses
//! them.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::Signal;
use super::signal::{from_number, number};
use crate::sys::os::PidFd;

/// Test fixtures: calls `handler` on a thread of its own for each of `signals`.
pub fn on_signals(
    signals: &[Signal],
    mut handler: impl FnMut(Signal) + Send + 'static,
) -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new(signals.iter().map(|&s| number(s)))?;
    std::thread::spawn(move || {
        for signal in signals.forever().filter_map(from_number) {
            handler(signal);
        }
    });
    Ok(())
}

/// Test fixtures: catches `signal` and does nothing about it (a server that
/// ignores SIGTERM, or survives SIGUSR1).
pub fn catch_signal(signal: Signal) -> io::Result<()> {
    signal_hook::flag::register(number(signal), Arc::new(AtomicBool::new(false))).map(|_| ())
}

/// Tests: stops the process `pidfd` pins with SIGSTOP, which is not in the
/// vocabulary (ocwrap never sends it); SIGCONT, which is, resumes it.
pub fn stop_process(pidfd: &PidFd) -> io::Result<()> {
    pidfd.send_signal_number(libc::SIGSTOP)
}

/// Starts a new session with this process as its leader (test fixture: the middle
/// process of a double fork).
pub fn new_session() -> io::Result<()> {
    // SAFETY: setsid takes no arguments and touches no memory of ours.
    if unsafe { libc::setsid() } == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Test fixtures: runs the command with `arg0` as its `argv[0]`.
pub fn set_arg0(command: &mut Command, arg0: &str) -> io::Result<()> {
    command.arg0(arg0);
    Ok(())
}

/// Test fixtures: a broker's socket. Removes a socket left at `path` (as brokers
/// do before they bind), listens there, and serves each connection on a thread
/// of its own until the peer closes it, then closes its end. Returns once it
/// listens.
pub fn serve_local_socket(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::net::UnixListener;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                while io::Read::read(&mut &stream, &mut buf).is_ok_and(|n| n > 0) {}
            });
        }
    });
    Ok(())
}

/// Test fixtures: sends one datagram to the notify socket at `path`, as
/// `sd_notify` does.
pub fn send_notify(path: &std::path::Path, message: &[u8]) -> io::Result<()> {
    let socket = std::os::unix::net::UnixDatagram::unbound()?;
    socket.send_to(message, path).map(|_| ())
}

/// Test fixtures: writes `bytes` to this process's descriptor `number` (the
/// readiness descriptor of `--ready fd:N`), then closes it.
pub fn write_descriptor(number: i32, bytes: &[u8]) -> io::Result<()> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD only asks whether `number` is open.
    if unsafe { libc::fcntl(number, libc::F_GETFD) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open and was handed to this process for this use;
    // the file takes it over and closes it.
    let mut file = unsafe { std::fs::File::from_raw_fd(number) };
    io::Write::write_all(&mut file, bytes)
}
