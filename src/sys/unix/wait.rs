//! Waiting, on Unix: what the event loop waits on is a descriptor (`poll(2)`), and
//! our child's exit is reaped with `waitpid`. The pidfd or kqueue behind each
//! descriptor is per OS (`linux/wait.rs`, `macos/wait.rs`). See `docs/DESIGN.md`,
//! section "Platform seam".

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use crate::process::Pid;
use crate::sys::os::EventSet;

/// What the event loop waits on: a descriptor, readable or writable (see
/// [`poll`]).
pub type Waitable<'a> = BorrowedFd<'a>;

/// Anything the loop can wait on by itself (a pidfd, an epoll set).
pub trait AsWaitable {
    fn waitable(&self) -> Waitable<'_>;
}

impl<T: AsFd> AsWaitable for T {
    fn waitable(&self) -> Waitable<'_> {
        self.as_fd()
    }
}

impl EventSet {
    /// The descriptors to wait on for the whole set: the epoll set (a kqueue on
    /// macOS) itself.
    pub fn waitables(&self) -> Vec<Waitable<'_>> {
        vec![self.as_fd()]
    }
}

/// Reaps our child `pid` if it has exited, returning its status.
pub fn reap(pid: Pid) -> io::Result<Option<ExitStatus>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes one int into `status`, which lives for the call.
    let rc = unsafe { libc::waitpid(pid.get(), &mut status, libc::WNOHANG) };
    match rc {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        _ => Ok(Some(ExitStatus::from_raw(status))),
    }
}

/// Waits until one of `fds` is readable or `timeout` passes (`None`: forever).
/// Returns which were readable (or hung up); an interrupting signal returns early
/// with none marked, which callers treat as a wake-up like any other.
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let fds: Vec<(BorrowedFd<'_>, Interest)> = fds.iter().map(|&fd| (fd, Interest::Read)).collect();
    poll(&fds, timeout)
}

/// What a descriptor in a [`poll`] set is waited on for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

/// Waits until one of `fds` is ready for what it is waited on for (or hung up, or
/// in error), or `timeout` passes (`None`: forever). Returns which were ready; an
/// interrupting signal returns early with none marked.
///
/// On macOS the supervisor's set holds pipes, sockets and kqueues, all of which
/// its poll(2) supports (a kqueue is readable while it has pending events);
/// devices, which it does not support, never appear in it.
pub fn poll(
    fds: &[(BorrowedFd<'_>, Interest)],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, interest)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: match interest {
                Interest::Read => libc::POLLIN,
                Interest::Write => libc::POLLOUT,
            },
            revents: 0,
        })
        .collect();
    let millis = match timeout {
        None => -1,
        // Round up so a 0.4 ms wait does not become a busy 0 ms loop.
        Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs for the call.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, millis) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(err);
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}
