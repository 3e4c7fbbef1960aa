//! Waiting, on macOS: a kqueue per process with `EVFILT_PROC`/`NOTE_EXIT` stands in
//! for a pidfd, one kqueue watching those stands in for Linux's epoll set, and our
//! unreaped child's exit is read without reaping it. Type-checked only. See
//! `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::{mem, ptr};

use super::proc::proc_info;
use super::{new_kqueue, register, register_keyed};
use crate::process::{Pid, ProcInfo, StartTime};

/// The stand-in for a pidfd: a kqueue holding one `EVFILT_PROC`/`NOTE_EXIT` event
/// for one process, so it becomes readable (to `poll`, like a pidfd) when that
/// process exits, and stays readable since nobody takes the event off. Unlike a
/// pidfd it cannot carry a signal; it remembers the start time it was opened on so
/// that [`PidFd::send_signal`] can check identity first.
#[derive(Debug)]
pub struct PidFd {
    kq: OwnedFd,
    pub(super) pid: Pid,
    pub(super) start: StartTime,
}

impl PidFd {
    /// Pins the process that holds `pid` now. The start time is read before and
    /// after the registration: the kernel attaches the event to whichever process
    /// held the PID at registration, and only if the same live process is seen on
    /// both sides is that known to be the one pinned. A process already in `exit()`
    /// is refused (`ESRCH`): XNU posts `NOTE_EXIT` early in exit, and an event
    /// attached after that would never fire.
    pub fn open(pid: Pid) -> io::Result<PidFd> {
        let gone = || io::Error::from_raw_os_error(libc::ESRCH);
        let before = proc_info(pid).filter(ProcInfo::is_live).ok_or_else(gone)?;
        let kq = new_kqueue()?;
        let ident = usize::try_from(pid.get()).map_err(|_| gone())?;
        register(kq.as_fd(), ident, libc::EVFILT_PROC, libc::NOTE_EXIT)?;
        match proc_info(pid) {
            Some(after) if after.is_live() && after.start == before.start => Ok(PidFd {
                kq,
                pid,
                start: before.start,
            }),
            _ => Err(gone()),
        }
    }

    /// A second handle on the same event: `dup` shares the kqueue, so both become
    /// readable together.
    pub fn try_clone(&self) -> io::Result<PidFd> {
        Ok(PidFd {
            kq: self.kq.try_clone()?,
            pid: self.pid,
            start: self.start,
        })
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.kq.as_fd()
    }
}

/// Whether owners can be watched with [`PidFd`]s here: kqueue's `EVFILT_PROC` is
/// part of every macOS, so this asks the kernel once rather than assuming.
pub fn pidfd_supported() -> bool {
    PidFd::open(Pid::current()).is_ok()
}

/// A kqueue standing in for Linux's epoll set: one descriptor that is readable while
/// any descriptor watched in it is ready. Teardown sleeps on it, so the supervisor
/// polls one descriptor for the whole tree, whatever the tree's size.
///
/// A [`PidFd`] here is itself a kqueue, readable once its process has exited, and a
/// kqueue can watch another one (`EVFILT_READ` on a kqueue descriptor: ready while
/// it has pending events). So each process is watched through its pidfd, as on
/// Linux, level-triggered (no `EV_CLEAR`): ready on every [`EventSet::ready`] until
/// the pidfd is closed, which removes it from the set.
#[derive(Debug)]
pub struct EventSet(OwnedFd);

impl EventSet {
    pub fn new() -> io::Result<EventSet> {
        Ok(EventSet(new_kqueue()?))
    }

    /// Ready once the process behind `pidfd` has exited. Closing the pidfd removes
    /// it from the set (closing a descriptor drops the events registered on it).
    pub fn watch_exit(&self, pidfd: &PidFd, key: u64) -> io::Result<()> {
        let ident = usize::try_from(pidfd.kq.as_raw_fd())
            .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        register_keyed(
            self.0.as_fd(),
            ident,
            libc::EVFILT_READ,
            libc::EV_ADD,
            0,
            key,
        )
    }

    /// On Linux: ready when a kernel status file (a cgroup's `cgroup.events`)
    /// changed and has not been read since. macOS has no such files (and no
    /// cgroups, the only ones watched), so this is `Unsupported`; the caller then
    /// goes without the wake-up.
    pub fn watch_change(&self, _fd: BorrowedFd<'_>, _key: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "macOS has no kernel status files that announce a change",
        ))
    }

    /// The keys of the watched descriptors that are ready now, without waiting;
    /// `watched` is how many are in the set, so that one call returns every one.
    pub fn ready(&self, watched: usize) -> io::Result<Vec<u64>> {
        // SAFETY: kevent is plain data (a null udata pointer is a valid value).
        let mut events: Vec<libc::kevent> = vec![unsafe { mem::zeroed() }; watched.max(1)];
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        loop {
            // SAFETY: no changes; the kernel writes at most `max` records into
            // `events`, which holds at least that many and lives for the call; the
            // zero timeout makes it a poll.
            let n = unsafe {
                libc::kevent(
                    self.0.as_raw_fd(),
                    ptr::null(),
                    0,
                    events.as_mut_ptr(),
                    max,
                    &zero,
                )
            };
            if let Ok(n) = usize::try_from(n) {
                return Ok(events[..n].iter().map(|e| e.udata.addr() as u64).collect());
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

/// Whether our child `pid` has exited, without reaping it: the server's leader is
/// left a zombie until teardown ends so that its PID, which is also its process
/// group's ID, cannot be recycled while we still signal that group.
///
/// Read from [`proc_info`] (zombie, in exit, or gone) rather than from
/// `waitid(WNOWAIT)`, so that it agrees with the owner watch about a process in
/// `exit()` (see [`PROC_FLAG_INEXIT`](super::proc::PROC_FLAG_INEXIT));
/// [`reap`](crate::sys::reap) then waits for the zombie. Asking
/// by PID is safe because an unreaped child's PID cannot be recycled. A live process
/// that is not our child is `ECHILD`, as `waitid` would say.
pub(in crate::sys) fn has_exited(pid: Pid) -> io::Result<bool> {
    match proc_info(pid) {
        None => Ok(true),
        Some(info) if !info.is_live() => Ok(true),
        Some(info) if info.ppid == Some(Pid::current()) => Ok(false),
        Some(_) => Err(io::Error::from_raw_os_error(libc::ECHILD)),
    }
}

/// Whether our child `pid` has exited with status 0, without reaping it.
pub(in crate::sys) fn exited_successfully(pid: Pid) -> bool {
    // SAFETY: siginfo_t is plain data; zeroed is a valid "nothing happened" value.
    let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: waitid writes into `info`, which lives for the call.
    let rc = unsafe { libc::waitid(libc::P_PID, pid.get() as libc::id_t, &mut info, flags) };
    rc == 0 && info.si_pid != 0 && info.si_code == libc::CLD_EXITED && info.si_status == 0
}

/// Whether a write of at most `PIPE_BUF` bytes to `fd` would complete without
/// blocking right now. Diagnostics use it so that a stderr pipe nobody reads can
/// never stall the supervisor.
///
/// `select`, not `poll`: macOS's poll(2) does not support devices (its man page,
/// BUGS), and stderr is often a terminal. A pipe selects writable only with at least
/// `PIPE_BUF` bytes free, as the question needs.
pub(in crate::sys) fn writable_now(fd: BorrowedFd<'_>) -> bool {
    let raw = fd.as_raw_fd();
    if usize::try_from(raw).map_or(true, |n| n >= libc::FD_SETSIZE) {
        return false;
    }
    // SAFETY: fd_set is plain data, and FD_ZERO/FD_SET/FD_ISSET index it within
    // FD_SETSIZE, checked above. select reads and writes only the set and the
    // timeout, which live for the call; a zero timeout makes it return at once.
    unsafe {
        let mut set: libc::fd_set = mem::zeroed();
        libc::FD_ZERO(&mut set);
        libc::FD_SET(raw, &mut set);
        let mut timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        let n = libc::select(
            raw + 1,
            ptr::null_mut(),
            &mut set,
            ptr::null_mut(),
            &mut timeout,
        );
        n == 1 && libc::FD_ISSET(raw, &set)
    }
}
