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
//! Delivery is the platform's (`sys::SignalInbox`): on Unix signal-hook's self-pipe,
//! where handlers only write a byte and the loop polls the read end together with
//! the owners' pidfds. On Windows, ocwrap's console events (Ctrl-C, Ctrl-Break,
//! console close) arrive as SIGINT; no other signal exists there.

use std::io;

use crate::sys::{self, Signal, SignalInbox, Waitable};

/// Signals passed on to the server's process group.
pub const FORWARDED: [Signal; 8] = [
    sys::SIGINT,
    sys::SIGTERM,
    sys::SIGHUP,
    sys::SIGQUIT,
    sys::SIGUSR1,
    sys::SIGUSR2,
    sys::SIGWINCH,
    sys::SIGCONT,
];

/// Forwarded signals that also start teardown.
pub fn is_terminating(signal: Signal) -> bool {
    matches!(
        signal,
        sys::SIGINT | sys::SIGTERM | sys::SIGHUP | sys::SIGQUIT
    )
}

/// The POSIX name, "SIGTERM" (see [`Signal::name`]).
pub fn name(signal: Signal) -> &'static str {
    signal.name()
}

/// The supervisor's signal inbox.
#[derive(Debug)]
pub struct Signals {
    inbox: SignalInbox,
}

impl Signals {
    /// Installs the policy above. Must run before the server is spawned, so that no
    /// signal sent in between kills ocwrap with the server left behind.
    pub fn install() -> io::Result<Signals> {
        sys::ignore_signal(sys::SIGTTIN)?;
        sys::ignore_signal(sys::SIGTTOU)?;
        let mut handled = FORWARDED.to_vec();
        handled.push(sys::SIGCHLD);
        let inbox = SignalInbox::install(&handled)?;
        Ok(Signals { inbox })
    }

    /// Ready when a signal has arrived.
    pub fn waitable(&self) -> Waitable<'_> {
        self.inbox.waitable()
    }

    /// The signals that arrived since the last call (each at most once), never
    /// blocking.
    pub fn drain(&mut self) -> Vec<Signal> {
        self.inbox.drain()
    }
}
