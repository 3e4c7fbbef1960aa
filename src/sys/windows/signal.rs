//! Signals: the POSIX vocabulary the portable code speaks, what delivering each
//! means here (`CTRL_BREAK_EVENT` to a group, `TerminateProcess`), and ocwrap's
//! own stop requests (console events through `ctrlc`). See `docs/DESIGN.md`,
//! section "Platform seam".

use std::io;
use std::os::windows::io::{AsHandle, OwnedHandle};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};

use windows_sys::Win32::System::Console::{CTRL_BREAK_EVENT, GenerateConsoleCtrlEvent};
use windows_sys::Win32::System::Threading::{ResetEvent, SetEvent, TerminateProcess};

use super::wait::{PidFd, Waitable};
use super::{KILLED_EXIT_CODE, check, manual_event, raw};
use crate::process::{Pid, Target};

/// Windows has no signals; the portable code speaks POSIX's vocabulary (a
/// [`Signal`] names a signal and carries no number), and this file says what each
/// means here: see [`signal`], [`PidFd::send_signal`] and [`SignalInbox`].
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

/// Never a number: Windows numbers no signal, and no exit status here names one
/// ([`exit_signal`] is always `None`).
pub fn signal_number(_signal: Signal) -> Option<i32> {
    None
}

impl PidFd {
    /// "Signals" the process through its handle, so it reaches that process or
    /// nobody, never a newcomer with its PID. Windows has one signal a process
    /// cannot refuse: SIGKILL is `TerminateProcess`. SIGCONT has nothing to do (no
    /// process is stopped by a signal here). Every other signal is `Unsupported`:
    /// a graceful request goes to a process group ([`signal`]), not to a process.
    pub fn send_signal(&self, signal: Signal) -> io::Result<()> {
        match signal {
            SIGKILL => {
                // SAFETY: a valid process handle; the call checks its access rights.
                check(unsafe { TerminateProcess(raw(&self.as_handle()), KILLED_EXIT_CODE) })
            }
            SIGCONT => Ok(()),
            _ => Err(unsupported_signal(signal)),
        }
    }
}

fn unsupported_signal(signal: Signal) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{signal} has no Windows counterpart"),
    )
}

/// Sends `signal` to a process or a process group, as far as Windows has one:
///
/// - to a group (the server's, made with `CREATE_NEW_PROCESS_GROUP`), SIGTERM,
///   SIGHUP and SIGQUIT are the graceful request to stop, `CTRL_BREAK_EVENT`
///   ([`request_stop`]). SIGINT does nothing: Ctrl-C cannot be sent to another
///   group, and the one SIGINT ocwrap forwards (its own Ctrl-C, see
///   [`SignalInbox`]) is followed at once by teardown's SIGTERM, so the server gets
///   one Ctrl-Break, not two. SIGCONT does nothing either;
/// - to a process, SIGKILL is `TerminateProcess` (by PID: only for a process whose
///   identity the caller made sure of);
/// - anything else is `Unsupported`. PID 1 and group 1 are refused, as on Unix.
pub fn signal(target: Target, signal: Signal) -> io::Result<()> {
    if target.for_kill().is_none() {
        return Err(io::Error::from(io::ErrorKind::PermissionDenied));
    }
    match (target, signal) {
        (Target::ProcessGroup(group), SIGTERM | SIGHUP | SIGQUIT) => request_stop(group),
        (Target::ProcessGroup(_), SIGINT | SIGCONT) => Ok(()),
        (Target::Process(pid), SIGKILL) => PidFd::open(pid)?.send_signal(SIGKILL),
        _ => Err(unsupported_signal(signal)),
    }
}

/// ocwrap's own "signals": Ctrl-C, Ctrl-Break and console close (and logoff and
/// shutdown), through `ctrlc`, which cannot tell them apart. Each arrives as SIGINT
/// (a request to stop, as from a terminal). They come on a thread of their own;
/// this turns them into a list and a manual-reset event the loop waits on. On
/// console close Windows gives the handler about 5 s before it kills ocwrap; then
/// the job's handle closes and the tree goes with it anyway. No other signal of
/// the vocabulary ever arrives (the server's exit wakes the loop through its
/// handle: [`ServerChild::exit_waitable`]).
///
/// [`ServerChild::exit_waitable`]: super::ServerChild::exit_waitable
#[derive(Debug)]
pub struct SignalInbox {
    event: Arc<OwnedHandle>,
    pending: Arc<Mutex<Vec<Signal>>>,
}

impl SignalInbox {
    /// Installs the console handler if SIGINT is among `signals`. `ctrlc` allows
    /// one handler per process: a second call fails.
    pub fn install(signals: &[Signal]) -> io::Result<SignalInbox> {
        let event = Arc::new(manual_event()?);
        let pending = Arc::new(Mutex::new(Vec::new()));
        if signals.contains(&SIGINT) {
            let (set, arrived) = (Arc::clone(&event), Arc::clone(&pending));
            ctrlc::set_handler(move || {
                let mut arrived = arrived.lock().unwrap_or_else(PoisonError::into_inner);
                if !arrived.contains(&SIGINT) {
                    arrived.push(SIGINT);
                }
                // SAFETY: a valid event handle kept alive by the Arc.
                unsafe { SetEvent(raw(&*set)) };
            })
            .map_err(io::Error::other)?;
        }
        Ok(SignalInbox { event, pending })
    }

    /// Signalled while a console event is pending.
    pub fn waitable(&self) -> Waitable<'_> {
        self.event.as_handle()
    }

    /// The events that arrived since the last call. The event is reset before the
    /// list is taken, so one arriving in between is never lost (at worst it causes
    /// one empty wake-up).
    pub fn drain(&mut self) -> Vec<Signal> {
        // SAFETY: a valid event handle.
        unsafe { ResetEvent(raw(&*self.event)) };
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The graceful request to stop: `CTRL_BREAK_EVENT` to the server's process group
/// (the server's PID; see [`spawn_server`]). It reaches only processes attached to
/// ocwrap's console; a server without one gets nothing, and teardown goes on to
/// `TerminateJobObject` after the grace. Wine does not implement it, so it is
/// untested there.
///
/// [`spawn_server`]: super::spawn_server
fn request_stop(group: Pid) -> io::Result<()> {
    let group =
        u32::try_from(group.get()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain values; a group is never 0 (every process on our console).
    check(unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group) })
}

/// Never: a Windows process ends with an exit code, however it ends.
pub fn exit_signal(_status: &ExitStatus) -> Option<i32> {
    None
}

/// No-op: there are no job-control signals (SIGTTIN/SIGTTOU) on Windows.
pub fn ignore_signal(_signal: Signal) -> io::Result<()> {
    Ok(())
}
