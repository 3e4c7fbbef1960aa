//! Signals, on Unix: the POSIX vocabulary and its numbers here, sending one to a
//! process or a group, their delivery to the supervisor's loop (signal-hook's
//! self-pipe), and ignoring one. See `docs/DESIGN.md`, sections "Signals" and
//! "Platform seam".

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

use super::Waitable;
use crate::process::Target;

pub use crate::process::Signal;

pub const SIGHUP: Signal = Signal::Hup;
pub const SIGINT: Signal = Signal::Int;
pub const SIGQUIT: Signal = Signal::Quit;
pub const SIGKILL: Signal = Signal::Kill;
pub const SIGUSR1: Signal = Signal::Usr1;
pub const SIGUSR2: Signal = Signal::Usr2;
pub const SIGTERM: Signal = Signal::Term;
pub const SIGCHLD: Signal = Signal::Chld;
pub const SIGCONT: Signal = Signal::Cont;
pub const SIGTTIN: Signal = Signal::Ttin;
pub const SIGTTOU: Signal = Signal::Ttou;
pub const SIGWINCH: Signal = Signal::Winch;

/// This platform's number for `signal` (libc's: they differ between Linux and
/// macOS).
pub(in crate::sys) fn number(signal: Signal) -> libc::c_int {
    match signal {
        Signal::Hup => libc::SIGHUP,
        Signal::Int => libc::SIGINT,
        Signal::Quit => libc::SIGQUIT,
        Signal::Kill => libc::SIGKILL,
        Signal::Usr1 => libc::SIGUSR1,
        Signal::Usr2 => libc::SIGUSR2,
        Signal::Term => libc::SIGTERM,
        Signal::Chld => libc::SIGCHLD,
        Signal::Cont => libc::SIGCONT,
        Signal::Ttin => libc::SIGTTIN,
        Signal::Ttou => libc::SIGTTOU,
        Signal::Winch => libc::SIGWINCH,
    }
}

/// The signal of the vocabulary with this platform's number `n`, if any.
pub(in crate::sys) fn from_number(n: libc::c_int) -> Option<Signal> {
    Some(match n {
        libc::SIGHUP => Signal::Hup,
        libc::SIGINT => Signal::Int,
        libc::SIGQUIT => Signal::Quit,
        libc::SIGKILL => Signal::Kill,
        libc::SIGUSR1 => Signal::Usr1,
        libc::SIGUSR2 => Signal::Usr2,
        libc::SIGTERM => Signal::Term,
        libc::SIGCHLD => Signal::Chld,
        libc::SIGCONT => Signal::Cont,
        libc::SIGTTIN => Signal::Ttin,
        libc::SIGTTOU => Signal::Ttou,
        libc::SIGWINCH => Signal::Winch,
        _ => return None,
    })
}

/// The number of `signal` here: every signal of the vocabulary has one on Unix, so
/// this is never `None`.
pub fn signal_number(signal: Signal) -> Option<i32> {
    Some(number(signal))
}

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
        let numbers: Vec<libc::c_int> = signals.iter().map(|&s| number(s)).collect();
        let delivery = SignalDelivery::with_pipe(read, write, SignalOnly, numbers)?;
        Ok(SignalInbox { delivery })
    }

    /// Readable when a signal has arrived.
    pub fn waitable(&self) -> Waitable<'_> {
        self.delivery.get_read().as_fd()
    }

    /// The signals that arrived since the last call (each at most once), never
    /// blocking. Only the installed ones can arrive; a number outside the
    /// vocabulary would be dropped.
    pub fn drain(&mut self) -> Vec<Signal> {
        self.delivery.pending().filter_map(from_number).collect()
    }
}

/// Sends `signal` to a process or a group. Refuses PID 1 and group 1 (see
/// [`Target::for_kill`]) with `EPERM`.
pub fn signal(target: Target, signal: Signal) -> io::Result<()> {
    signal_by_number(target, number(signal))
}

/// [`signal`], with this platform's number (macOS's `PidFd` sends SIGSTOP for the
/// tests this way).
pub(in crate::sys) fn signal_by_number(target: Target, signal: libc::c_int) -> io::Result<()> {
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

/// The number of the signal that ended a process, if one did (any signal, in or out
/// of the vocabulary: the exit code is 128 + this number).
pub fn exit_signal(status: &ExitStatus) -> Option<i32> {
    status.signal()
}

/// Sets a signal to be ignored (SIGTTIN/SIGTTOU: a supervisor in a background
/// process group must not be stopped by the terminal).
pub fn ignore_signal(signal: Signal) -> io::Result<()> {
    // SAFETY: installing SIG_IGN involves no handler code and no memory of ours.
    let previous = unsafe { libc::signal(number(signal), libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
