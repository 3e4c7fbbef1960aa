//! Signals, on macOS: signalling one pinned process, checked against its exit event
//! and its start time first, since macOS cannot signal through a handle. The
//! vocabulary, groups and ocwrap's own stop requests are what macOS and Linux share
//! (`sys/unix/signal.rs`). Type-checked only. See `docs/DESIGN.md`, section
//! "Platform seam".

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use super::proc::proc_info;
use super::wait::PidFd;
use crate::process::{Signal, Target};
use crate::sys::unix::{self, poll_readable};

impl PidFd {
    /// Sends a signal to the pinned process if it is still there (`ESRCH` if not).
    ///
    /// macOS cannot signal through a handle, so this checks and then calls
    /// `kill(2)` by PID: the exit event must not have fired, and the PID must still
    /// name a live process with the start time seen at [`PidFd::open`].
    ///
    /// Residual race, which a pidfd does not have: between that check and `kill`,
    /// the process can exit, be reaped by its parent, and its PID be handed to a new
    /// process, which would then get the signal. It needs a full cycle of the PID
    /// space (XNU hands PIDs out in order up to 99999) within those microseconds. For
    /// the supervisor's own unreaped children there is no race at all: their PID
    /// stays taken until we reap them.
    pub fn send_signal(&self, signal: Signal) -> io::Result<()> {
        self.send_signal_number(unix::signal_to_number(signal))
    }

    /// [`PidFd::send_signal`], with macOS's number (the tests' SIGSTOP).
    pub(in crate::sys) fn send_signal_number(&self, signal: libc::c_int) -> io::Result<()> {
        let exited = poll_readable(&[self.as_fd()], Some(Duration::ZERO))?[0];
        let same = proc_info(self.pid).is_some_and(|now| now.is_live() && now.start == self.start);
        if exited || !same {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        unix::signal_by_number(Target::Process(self.pid), signal)
    }
}
