//! Signals, on Unix: the POSIX vocabulary, sending one to a process or a group,
//! their delivery to the supervisor's loop (signal-hook's self-pipe), and ignoring
//! one. See `docs/DESIGN.md`, sections "Signals" and "Platform seam".

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

use super::Waitable;
use crate::process::Target;

/// A signal number.
pub type Signal = libc::c_int;

pub use libc::{
    SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1,
    SIGUSR2, SIGWINCH,
};

/// The supervisor's signal inbox: signal-hook's self-pipe. Handlers only write a
/// byte; the loop polls the read end with everything else.
#[derive(Debug)]
pub struct SignalInbox {
    delivery: SignalDelivery<UnixStream, SignalOnly>,
}

impl SignalInbox {
    /// Handles `signals` from now on.
    pub fn install(signals: &[Signal]) -> io::Result<SignalInbox> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let delivery = SignalDelivery::with_pipe(read, write, SignalOnly, signals)?;
        Ok(SignalInbox { delivery })
    }

    /// Readable when a signal has arrived.
    pub fn waitable(&self) -> Waitable<'_> {
        self.delivery.get_read().as_fd()
    }

    /// The signals that arrived since the last call (each at most once), never
    /// blocking.
    pub fn drain(&mut self) -> Vec<Signal> {
        self.delivery.pending().collect()
    }
}

/// Sends `signal` to a process or a group. Refuses PID 1 and group 1 (see
/// [`Target::for_kill`]) with `EPERM`.
pub fn signal(target: Target, signal: libc::c_int) -> io::Result<()> {
    let Some(raw) = target.for_kill() else {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    };
    // SAFETY: kill takes plain integers; `raw` is never 0, -1 or ±1 (see for_kill).
    if unsafe { libc::kill(raw, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The signal that ended a process, if one did.
pub fn exit_signal(status: &ExitStatus) -> Option<i32> {
    status.signal()
}

/// Sets a signal to be ignored (SIGTTIN/SIGTTOU: a supervisor in a background
/// process group must not be stopped by the terminal).
pub fn ignore_signal(signal: libc::c_int) -> io::Result<()> {
    // SAFETY: installing SIG_IGN involves no handler code and no memory of ours.
    let previous = unsafe { libc::signal(signal, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
