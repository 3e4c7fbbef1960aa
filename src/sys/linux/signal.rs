//! Signals, on Linux: signalling one process through its pidfd, so that a signal
//! reaches the process seen or nobody. The vocabulary, groups and ocwrap's own stop
//! requests are what Linux and macOS share (`sys/unix/signal.rs`). See
//! `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use super::wait::PidFd;
use crate::process::Signal;
use crate::sys::unix::signal_to_number;

impl PidFd {
    /// Sends a signal through the pidfd: it reaches the process the pidfd was opened
    /// on, or nobody (`ESRCH`), never a newcomer with the same PID.
    pub fn send_signal(&self, signal: Signal) -> io::Result<()> {
        self.send_signal_number(signal_to_number(signal))
    }

    /// [`PidFd::send_signal`], with Linux's number (the tests' SIGSTOP).
    pub(in crate::sys) fn send_signal_number(&self, signal: libc::c_int) -> io::Result<()> {
        // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.as_fd().as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}
