//! Which signals ocwrap handles and why (docs/DESIGN.md, "Signals"), and their delivery to the
//! supervisor's event loop.
//!
//! Policy:
//! - SIGINT, SIGTERM, SIGHUP, SIGQUIT: forwarded to the server's group, and they start
//!   teardown (a second one during the grace kills at once). These are what a
//!   terminal, a service manager or a user sends to say "stop".
//! - SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT: forwarded only; they mean something to the
//!   server (reload, resize, resume) and nothing to the supervisor.
//! - SIGCHLD: wakes the loop to reap and to notice the server's exit.
//! - SIGTTIN, SIGTTOU: ignored, so a supervisor in a background job is never stopped
//!   by the terminal; the server gets them back at their defaults before exec.
//! - SIGPIPE: already ignored by the Rust runtime (and reset for the server by std),
//!   so a stdout or stderr pipe nobody reads can never kill ocwrap.
//! - SIGTSTP and SIGSTOP keep their defaults: stopping the supervisor is the user's call.
//!
//! Delivery is signal-hook's self-pipe: handlers only write a byte, the loop polls
//! the read end together with the owners' pidfds.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use libc::c_int;
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

use crate::sys;

/// Signals passed on to the server's process group.
pub const FORWARDED: [c_int; 8] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
];

/// Forwarded signals that also start teardown.
pub fn is_terminating(signal: c_int) -> bool {
    matches!(
        signal,
        libc::SIGINT | libc::SIGTERM | libc::SIGHUP | libc::SIGQUIT
    )
}

pub fn name(signal: c_int) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGCONT => "SIGCONT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGKILL => "SIGKILL",
        _ => "signal",
    }
}

/// The supervisor's signal inbox.
#[derive(Debug)]
pub struct Signals {
    delivery: SignalDelivery<UnixStream, SignalOnly>,
}

impl Signals {
    /// Installs the policy above. Must run before the server is spawned, so that no
    /// signal sent in between kills ocwrap with the server left behind.
    pub fn install() -> io::Result<Signals> {
        sys::ignore_signal(libc::SIGTTIN)?;
        sys::ignore_signal(libc::SIGTTOU)?;
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let handled = FORWARDED.iter().chain(&[libc::SIGCHLD]);
        let delivery = SignalDelivery::with_pipe(read, write, SignalOnly, handled)?;
        Ok(Signals { delivery })
    }

    /// Readable when a signal has arrived.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.delivery.get_read().as_fd()
    }

    /// The signals that arrived since the last call (each at most once), never
    /// blocking.
    pub fn drain(&mut self) -> Vec<c_int> {
        self.delivery.pending().collect()
    }
}
