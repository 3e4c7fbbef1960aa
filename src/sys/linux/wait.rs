//! Waiting, on Linux: pidfds (a handle on one process that keeps naming it after its
//! PID is recycled), the epoll set teardown sleeps on, and what `waitid(WNOWAIT)`
//! and a zero-timeout `poll` say without waiting. See `docs/DESIGN.md`, section
//! "Platform seam".

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::process::Pid;

/// A pidfd: a handle on one process that stays valid, and keeps naming that same
/// process, even after its PID is recycled.
#[derive(Debug)]
pub struct PidFd(OwnedFd);

impl PidFd {
    pub fn open(pid: Pid) -> io::Result<PidFd> {
        // SAFETY: pidfd_open takes a PID and flags and returns a new descriptor or -1.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.get(), 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(raw as RawFd) }))
    }

    pub fn try_clone(&self) -> io::Result<PidFd> {
        Ok(PidFd(self.0.try_clone()?))
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Whether this kernel has pidfds (Linux ≥ 5.3) and lets us use them.
pub fn pidfd_supported() -> bool {
    PidFd::open(Pid::current()).is_ok()
}

/// An epoll set: one descriptor that is readable while any descriptor watched in
/// it is ready. Teardown sleeps on it, so the supervisor polls one descriptor for
/// the whole tree, whatever the tree's size.
#[derive(Debug)]
pub struct EventSet(OwnedFd);

impl EventSet {
    pub fn new() -> io::Result<EventSet> {
        // SAFETY: epoll_create1 takes flags and returns a new descriptor or -1.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
        Ok(EventSet(unsafe { OwnedFd::from_raw_fd(raw) }))
    }

    /// Ready once the process behind `pidfd` has exited. Closing the pidfd removes
    /// it from the set (the kernel drops a closed descriptor's registration).
    pub fn watch_exit(&self, pidfd: &PidFd, key: u64) -> io::Result<()> {
        self.add(pidfd.as_fd(), libc::EPOLLIN, key)
    }

    /// Ready when a kernel status file (a cgroup's `cgroup.events`) changed and has
    /// not been read since: such files signal a change with `POLLPRI`, and would
    /// always look readable to a plain `POLLIN` poll.
    pub fn watch_change(&self, fd: BorrowedFd<'_>, key: u64) -> io::Result<()> {
        self.add(fd, libc::EPOLLPRI, key)
    }

    fn add(&self, fd: BorrowedFd<'_>, events: libc::c_int, key: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: key,
        };
        // SAFETY: a valid epoll descriptor, a valid descriptor to watch, and an event
        // struct that lives for the call.
        let rc = unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut event,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The keys of the watched descriptors that are ready now, without waiting;
    /// `watched` is how many are in the set, so that one call returns every one.
    pub fn ready(&self, watched: usize) -> io::Result<Vec<u64>> {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; watched.max(1)];
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        loop {
            // SAFETY: `events` is a valid array of at least `max` entries for the call.
            let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, 0) };
            if n >= 0 {
                return Ok(events[..n as usize].iter().map(|e| e.u64).collect());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl AsFd for EventSet {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Whether our child `pid` has exited, without reaping it (`WNOWAIT`): the server's
/// leader is left a zombie until teardown ends so that its PID, which is also its
/// process group's ID, cannot be recycled while we still signal that group.
pub(in crate::sys) fn has_exited(pid: Pid) -> io::Result<bool> {
    // SAFETY: siginfo_t is plain data; zeroed is a valid "nothing happened" value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: waitid writes into `info`, which lives for the call.
    let rc = unsafe { libc::waitid(libc::P_PID, pid.get() as libc::id_t, &mut info, flags) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after a successful waitid the kernel filled si_pid (0: not exited yet).
    Ok(unsafe { info.si_pid() } != 0)
}

/// Whether our child `pid` has exited with status 0, without reaping it.
pub(in crate::sys) fn exited_successfully(pid: Pid) -> bool {
    // SAFETY: siginfo_t is plain data; zeroed is a valid "nothing happened" value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: waitid writes into `info`, which lives for the call.
    let rc = unsafe { libc::waitid(libc::P_PID, pid.get() as libc::id_t, &mut info, flags) };
    // SAFETY: after a successful waitid the kernel filled si_pid, and si_status
    // with it (0 in si_pid: not exited yet).
    rc == 0
        && unsafe { info.si_pid() } != 0
        && info.si_code == libc::CLD_EXITED
        && unsafe { info.si_status() } == 0
}

/// Whether a write of at most `PIPE_BUF` bytes to `fd` would complete without
/// blocking right now. Diagnostics use it so that a stderr pipe nobody reads can
/// never stall the supervisor.
pub(in crate::sys) fn writable_now(fd: BorrowedFd<'_>) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLOUT != 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP) == 0
}
