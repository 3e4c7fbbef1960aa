//! macOS implementation of the platform seam: the same names and signatures as
//! `linux.rs`, answered with macOS facilities through the `libc` crate.
//!
//! **Type-checked only.** `shell/xcheck.sh` compiles and lints this file for
//! `aarch64-apple-darwin` and `x86_64-apple-darwin`; no Mac has run it. What follows
//! is correct by reading the XNU sources and man pages, not by a test.
//!
//! How the questions of the seam are answered here:
//! - who a process is: `proc_pidinfo(PROC_PIDTBSDINFO)`; the start time is the
//!   kernel's `p_start` in microseconds since the epoch (fixed at fork, so a recycled
//!   PID comes back with another one). The kernel answers it for our own user's
//!   processes only (and for all of them as root): another user's process reads as
//!   absent, so it is never an owner we can pin, nor signalled;
//! - names, argv and environment: `proc_pidpath` and `sysctl(KERN_PROCARGS2)`;
//! - owners going away: a kqueue per owner with `EVFILT_PROC`/`NOTE_EXIT` stands in
//!   for a pidfd (readable once the process exits, so an idle supervisor still has no
//!   wake-ups). macOS cannot signal through such a handle: see [`PidFd::send_signal`];
//! - the server's tree exiting, member by member: one kqueue ([`EventSet`]) watching
//!   each member's pidfd kqueue with `EVFILT_READ`, as Linux's epoll set watches
//!   pidfds;
//! - the walk down the tree: `proc_listchildpids` ([`children`]);
//! - files removed or replaced: a kqueue with `EVFILT_VNODE` on each watched file;
//! - the peer of the control socket: `getpeereid`.
//!
//! The channel `up` hands to `__supervise` (descriptor 3) is the same as on Linux
//! and lives in `unix.rs`.
//!
//! What macOS lacks: a parent-death signal and a child subreaper. See
//! [`die_with_supervisor`] and [`become_child_subreaper`] for what holds instead, and
//! for the design of the guard process that would close the gap. It has no cgroups
//! either: [`Cgroup`] exists but can never be made, so `--contain auto` takes the
//! process group and `--contain cgroup` is an error. No kernel threads have PIDs of
//! their own ([`is_kernel_thread`]), and no process can read another's pending
//! signals ([`pending_signals`], a test fixture's stand-in).
//!
//! Every `unsafe` block carries a `// SAFETY:` comment saying why the call is sound.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use super::unix::FileId;
use std::time::Duration;
use std::{mem, ptr};

use super::procargs::ProcArgs;
use crate::process::{Pid, ProcInfo, RunState, StartTime, Target};

/// `pbi_flags` bit for a process that has begun `exit()` (`sys/proc_info.h`; not in
/// the `libc` crate). XNU sets it before it posts `NOTE_EXIT` and well before the
/// process becomes a zombie, so reading it as dead keeps [`proc_info`] in step with
/// a [`PidFd`] that just became readable.
const PROC_FLAG_INEXIT: u32 = 4;

/// macOS has no child subreaper: orphans always reparent to launchd. This returns
/// `Ok` so that the supervisor runs, but the guarantee the Linux version gives does
/// not hold: a descendant that `setsid`s and double-forks away leaves ocwrap's tree
/// (`process::descendants` follows parent links) and is not torn down with it.
/// Teardown still reaches the server's whole process group, and the tree marker in
/// its environment lets `gc` and the sweep find it after ocwrap is gone.
pub fn become_child_subreaper() -> io::Result<()> {
    Ok(())
}

/// Arranges for the spawned command to start with the signal dispositions a fresh
/// program expects, and refuses to exec it if its supervisor is already gone.
///
/// macOS has no parent-death signal, so only the check half of Linux's guarantee
/// holds: between fork and exec the child compares `getppid()` with `supervisor`
/// (our PID saved before the fork) and refuses to run if it was already reparented.
/// If ocwrap is SIGKILLed later, the server keeps running until the next ocwrap
/// command sweeps the dead registration (or `gc` runs).
///
/// Designed, not built (it needs portable code): a guard process closes that gap.
/// Before spawning the server, ocwrap would start a hidden `ocwrap __guard` whose
/// typed payload is ocwrap's identity (PID + start time, from which the tree marker
/// follows), sent on a pipe whose write end only ocwrap holds (`O_CLOEXEC`, so the
/// server never inherits it). The guard runs in its own session, so a terminal's
/// SIGINT/SIGHUP to ocwrap's group does not reach it; its environment lacks
/// `OCWRAP_TREE`, so no sweep takes it for a leftover; it holds no lock, record or
/// socket, says "armed" on a second pipe, and blocks in `read`. The server is spawned
/// only after "armed". When ocwrap dies for any reason, SIGKILL included, the kernel
/// closes its descriptors and the guard reads EOF at once (no polling, and no PID to
/// be recycled: the pipe names ocwrap's open files, not a number). The guard then
/// runs the sweep's leftover teardown for that identity, which signals only live
/// processes that carry the exact marker and started no earlier than ocwrap, so it
/// cannot touch a process ocwrap did not start. After a clean exit it finds nothing.
/// Escapees that kept the marker are found too, so the same guard would also end
/// Linux's grandchildren after ocwrap's SIGKILL (`PR_SET_PDEATHSIG` reaches only the
/// direct child). Not covered: a guard killed together with ocwrap (the next
/// command's sweep remains the backstop), and a process that cleared its environment.
pub fn die_with_supervisor(command: &mut Command, supervisor: Pid) {
    let expected_parent = supervisor.get();
    let hook = move || -> io::Result<()> {
        // SAFETY: getppid and signal are async-signal-safe; between fork and exec we
        // touch no allocator, no lock and no memory shared with the parent.
        unsafe {
            if libc::getppid() != expected_parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            libc::signal(libc::SIGTTIN, libc::SIG_DFL);
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
        }
        Ok(())
    };
    // SAFETY: the hook above only makes async-signal-safe calls (see there).
    unsafe {
        command.pre_exec(hook);
    }
}

/// Whether a write of at most `PIPE_BUF` bytes to `fd` would complete without
/// blocking right now. Diagnostics use it so that a stderr pipe nobody reads can
/// never stall the supervisor.
///
/// `select`, not `poll`: macOS's poll(2) does not support devices (its man page,
/// BUGS), and stderr is often a terminal. A pipe selects writable only with at least
/// `PIPE_BUF` bytes free, as the question needs.
pub fn writable_now(fd: BorrowedFd<'_>) -> bool {
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

/// Signals are numbered 1 to 31 on macOS (`__DARWIN_NSIG` in `sys/signal.h`; the
/// `libc` crate has no `NSIG` for Apple targets).
const NSIG: libc::c_int = 32;

/// Test fixture: forks `count` idle children, standing for the unrelated processes
/// of a busy host. Returns their PIDs; stops at the first failed fork.
///
/// macOS cannot show one process the signals pending for another (see
/// [`pending_signals`]), so these decoys do not block signals as Linux's do: every
/// signal that can be caught ends the decoy at once (`_exit(128 + signal)`), so a
/// decoy that anyone signalled reads as gone; SIGKILL ends it anyway, and SIGSTOP,
/// which cannot be caught, shows in [`pending_signals`]. With no parent-death
/// signal, each decoy waits on a kqueue for its parent's `NOTE_EXIT` and then exits.
pub fn fork_idle_children(count: usize) -> io::Result<Vec<Pid>> {
    let parent = Pid::current().get();
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        // SAFETY: the child only runs `idle_until_parent_dies`, which makes plain
        // system calls and never returns into Rust code, so forking a process that
        // may have other threads is sound.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => return Err(io::Error::last_os_error()),
            0 => idle_until_parent_dies(parent),
            pid => children.extend(Pid::new(pid)),
        }
    }
    Ok(children)
}

/// A decoy's handler for every catchable signal: it ends the decoy, which is how
/// the fixture sees that it was signalled.
extern "C" fn exit_on_signal(signal: libc::c_int) {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(128 + signal) }
}

/// The body of a child of [`fork_idle_children`]; never returns.
fn idle_until_parent_dies(parent: libc::pid_t) -> ! {
    // SAFETY: we may have been forked from a process with other threads, so only
    // calls that take no lock of the C library are made: sigfillset, sigaction and
    // _exit are async-signal-safe, and kqueue, kevent and getppid are bare system
    // calls. `action`, `change` and `event` live on this stack frame for the calls
    // using them, and the handler only calls _exit.
    unsafe {
        let mut action: libc::sigaction = mem::zeroed();
        action.sa_sigaction = exit_on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigfillset(&mut action.sa_mask);
        for signal in 1..NSIG {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::sigaction(signal, &action, ptr::null_mut());
            }
        }
        let kq = libc::kqueue();
        if kq < 0 {
            libc::_exit(1);
        }
        let change = libc::kevent {
            ident: parent as usize,
            filter: libc::EVFILT_PROC,
            flags: libc::EV_ADD,
            fflags: libc::NOTE_EXIT,
            data: 0,
            udata: ptr::null_mut(),
        };
        // Registered first, then checked: a parent that died before the
        // registration is no longer our parent, and one that dies after it posts
        // the event.
        if libc::kevent(kq, &change, 1, ptr::null_mut(), 0, ptr::null()) == -1
            || libc::getppid() != parent
        {
            libc::_exit(1);
        }
        let mut event: libc::kevent = mem::zeroed();
        loop {
            if libc::kevent(kq, ptr::null(), 0, &mut event, 1, ptr::null()) == 1 {
                libc::_exit(0);
            }
        }
    }
}

/// Test fixture: ends the calling thread and nothing else (`pthread_exit`, which
/// on macOS runs cleanup handlers and unwinds no frames).
pub fn exit_this_thread() -> ! {
    // SAFETY: pthread_exit ends only the calling thread and never returns; the
    // other threads own everything they use.
    unsafe { libc::pthread_exit(std::ptr::null_mut()) }
}

/// The signals pending for `pid` as a bit set, bit n-1 for signal n; `None` when
/// it is gone (or in `exit()`, or a zombie).
///
/// A stand-in, which only the decoys of [`fork_idle_children`] make meaningful:
/// macOS tells no process what is pending for another (`sysctl(KERN_PROC)` fills
/// `p_siglist` with 0, "no longer relevant" in XNU), so the only signal reported is
/// SIGSTOP, for a stopped process. A decoy that got any other signal has exited and
/// reads as gone.
pub fn pending_signals(pid: Pid) -> Option<u64> {
    let info = bsd_info(pid)?;
    if info.pbi_status == libc::SZOMB || info.pbi_flags & PROC_FLAG_INEXIT != 0 {
        return None;
    }
    Some(if info.pbi_status == libc::SSTOP {
        1 << (libc::SIGSTOP - 1)
    } else {
        0
    })
}

/// A new kqueue. Not inherited across fork by the kernel's own rule, so no child
/// (the server included) ever holds one of ours.
fn new_kqueue() -> io::Result<OwnedFd> {
    // SAFETY: kqueue takes no arguments and returns a new descriptor or -1.
    let raw = unsafe { libc::kqueue() };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Registers one event with a kqueue, edge-triggered (`EV_CLEAR`: reported once per
/// change), with no key.
fn register(kq: BorrowedFd<'_>, ident: usize, filter: i16, notes: u32) -> io::Result<()> {
    register_keyed(kq, ident, filter, libc::EV_ADD | libc::EV_CLEAR, notes, 0)
}

/// Registers one event with a kqueue, with `flags` as given and `key` carried in
/// `udata` (as a number, never dereferenced). With no room for events in the call, a
/// failed registration comes back as -1 and errno (kevent(2)), not as an `EV_ERROR`
/// event.
fn register_keyed(
    kq: BorrowedFd<'_>,
    ident: usize,
    filter: i16,
    flags: u16,
    notes: u32,
    key: u64,
) -> io::Result<()> {
    let key = usize::try_from(key).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let change = libc::kevent {
        ident,
        filter,
        flags,
        fflags: notes,
        data: 0,
        udata: ptr::without_provenance_mut(key),
    };
    // SAFETY: one valid change record that lives for the call, an empty event list,
    // and no timeout (kevent returns at once when it has no events to wait for).
    let rc = unsafe { libc::kevent(kq.as_raw_fd(), &change, 1, ptr::null_mut(), 0, ptr::null()) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Takes every pending event off a kqueue without blocking; whether there was any.
fn drain_kqueue(kq: BorrowedFd<'_>) -> bool {
    let mut any = false;
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: kevent is plain data (a null udata pointer is a valid value).
        let mut events: [libc::kevent; 16] = unsafe { mem::zeroed() };
        // SAFETY: no changes; the kernel writes at most `events.len()` records into
        // `events`, which lives for the call; the zero timeout makes it a poll.
        let n = unsafe {
            libc::kevent(
                kq.as_raw_fd(),
                ptr::null(),
                0,
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                &zero,
            )
        };
        if n <= 0 {
            return any;
        }
        any = true;
    }
}

/// The stand-in for a pidfd: a kqueue holding one `EVFILT_PROC`/`NOTE_EXIT` event
/// for one process, so it becomes readable (to `poll`, like a pidfd) when that
/// process exits, and stays readable since nobody takes the event off. Unlike a
/// pidfd it cannot carry a signal; it remembers the start time it was opened on so
/// that [`PidFd::send_signal`] can check identity first.
#[derive(Debug)]
pub struct PidFd {
    kq: OwnedFd,
    pid: Pid,
    start: StartTime,
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
    pub fn send_signal(&self, signal: libc::c_int) -> io::Result<()> {
        let exited = super::poll_readable(&[self.kq.as_fd()], Some(Duration::ZERO))?[0];
        let same = proc_info(self.pid).is_some_and(|now| now.is_live() && now.start == self.start);
        if exited || !same {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        super::signal(Target::Process(self.pid), signal)
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

/// Starts a TCP connection to `addr` without waiting for it: the returned stream is
/// non-blocking and becomes writable when the connection is made or has failed
/// (then `take_error` says why). Readiness probes run in the supervisor's loop this
/// way, so a slow server can never block it.
///
/// macOS's socket(2) takes no `SOCK_NONBLOCK`/`SOCK_CLOEXEC`, so both are set
/// right after it, before `connect`: std's own sockets have the same window, in
/// which a fork and exec on another thread would inherit the descriptor (the
/// supervisor spawns from its one thread). `SO_NOSIGPIPE` is set as std sets it on
/// its sockets: macOS has no `MSG_NOSIGNAL`, and a write to a connection the server
/// reset must fail with `EPIPE`, not raise SIGPIPE.
pub fn connect_nonblocking(addr: &std::net::SocketAddr) -> io::Result<std::net::TcpStream> {
    let (domain, storage, len) = socket_address(addr);
    // SAFETY: socket takes plain integers and returns a new descriptor or -1.
    let raw = unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: F_SETFD on the descriptor we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    super::set_nonblocking(fd.as_fd(), true)?;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads one int from `on`, which lives for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NOSIGPIPE,
            (&on as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `storage` holds a valid address of `len` bytes for the call.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(err);
        }
    }
    Ok(std::net::TcpStream::from(fd))
}

/// A socket address in the C layout `connect(2)` takes; BSD addresses start with
/// their own length (`sin_len`, `sin6_len`).
fn socket_address(
    addr: &std::net::SocketAddr,
) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    match addr {
        std::net::SocketAddr::V4(a) => {
            let len = mem::size_of::<libc::sockaddr_in>();
            let sin = libc::sockaddr_in {
                sin_len: len as u8,
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large enough and aligned for any sockaddr.
            unsafe { ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            (libc::AF_INET, storage, len as libc::socklen_t)
        }
        std::net::SocketAddr::V6(a) => {
            let len = mem::size_of::<libc::sockaddr_in6>();
            let sin6 = libc::sockaddr_in6 {
                sin6_len: len as u8,
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            (libc::AF_INET6, storage, len as libc::socklen_t)
        }
    }
}

/// Whether our child `pid` has exited, without reaping it: the server's leader is
/// left a zombie until teardown ends so that its PID, which is also its process
/// group's ID, cannot be recycled while we still signal that group.
///
/// Read from [`proc_info`] (zombie, in exit, or gone) rather than from
/// `waitid(WNOWAIT)`, so that it agrees with the owner watch about a process in
/// `exit()` (see [`PROC_FLAG_INEXIT`]); [`reap`] then waits for the zombie. Asking
/// by PID is safe because an unreaped child's PID cannot be recycled. A live process
/// that is not our child is `ECHILD`, as `waitid` would say.
pub fn has_exited(pid: Pid) -> io::Result<bool> {
    match proc_info(pid) {
        None => Ok(true),
        Some(info) if !info.is_live() => Ok(true),
        Some(info) if info.ppid == Some(Pid::current()) => Ok(false),
        Some(_) => Err(io::Error::from_raw_os_error(libc::ECHILD)),
    }
}

/// Whether our child `pid` has exited with status 0, without reaping it.
pub fn exited_successfully(pid: Pid) -> bool {
    // SAFETY: siginfo_t is plain data; zeroed is a valid "nothing happened" value.
    let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: waitid writes into `info`, which lives for the call.
    let rc = unsafe { libc::waitid(libc::P_PID, pid.get() as libc::id_t, &mut info, flags) };
    rc == 0 && info.si_pid != 0 && info.si_code == libc::CLD_EXITED && info.si_status == 0
}

/// The kernel's `proc_bsdinfo` for `pid`, zombies included (a non-zero `arg` asks
/// XNU to look among zombies too), or `None` when there is no such process or it
/// belongs to another user and we are not root.
fn bsd_info(pid: Pid) -> Option<libc::proc_bsdinfo> {
    // SAFETY: proc_bsdinfo is plain data; zeroed is a valid value to be overwritten.
    let mut info: libc::proc_bsdinfo = unsafe { mem::zeroed() };
    let size = mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: proc_pidinfo writes at most `size` bytes into `info`, which lives for
    // the call.
    let written = unsafe {
        libc::proc_pidinfo(
            pid.get(),
            libc::PROC_PIDTBSDINFO,
            1,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        )
    };
    (written == size && Pid::from_u32(info.pbi_pid) == Some(pid)).then_some(info)
}

/// One process, or `None` when there is no such process (or it is not ours to see:
/// see the module header).
pub fn proc_info(pid: Pid) -> Option<ProcInfo> {
    let info = bsd_info(pid)?;
    // A process in exit() can no longer act, and its NOTE_EXIT may already have
    // fired: it counts as dead, like Linux's zombies.
    let dead = info.pbi_status == libc::SZOMB || info.pbi_flags & PROC_FLAG_INEXIT != 0;
    // SAFETY: getsid takes a PID and touches no memory; -1 when it cannot answer.
    let sid = unsafe { libc::getsid(pid.get()) };
    Some(ProcInfo {
        pid,
        ppid: Pid::from_u32(info.pbi_ppid),
        pgid: Pid::from_u32(info.pbi_pgid),
        sid: Pid::new(sid),
        start: StartTime(
            info.pbi_start_tvsec
                .saturating_mul(1_000_000)
                .saturating_add(info.pbi_start_tvusec),
        ),
        state: if dead { RunState::Dead } else { RunState::Live },
    })
}

/// One process, as [`proc_info`]: `Ok(None)` when it cannot be seen. macOS's
/// `proc_pidinfo` needs no descriptor, so a failed look is not told apart from a
/// missing process here (designed only; nothing ran on a Mac).
pub fn proc_lookup(pid: Pid) -> io::Result<Option<ProcInfo>> {
    Ok(proc_info(pid))
}

/// Every PID the kernel lists right now, from `proc_listallpids`. Asking first for
/// the count and then for the list races with forks, so the buffer has headroom and
/// a full buffer is asked again with a bigger one.
fn all_pids() -> Vec<libc::pid_t> {
    // SAFETY: a null buffer of size 0 asks only how many PIDs there are.
    let count = unsafe { libc::proc_listallpids(ptr::null_mut(), 0) };
    let mut capacity = usize::try_from(count).unwrap_or(0) + 64;
    for _ in 0..4 {
        let mut pids: Vec<libc::pid_t> = vec![0; capacity];
        let Ok(bytes) = libc::c_int::try_from(capacity * mem::size_of::<libc::pid_t>()) else {
            return Vec::new();
        };
        // SAFETY: proc_listallpids writes at most `bytes` bytes, the size of `pids`.
        let n = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
        let Ok(n) = usize::try_from(n) else {
            return Vec::new();
        };
        if n < capacity {
            pids.truncate(n);
            return pids;
        }
        capacity *= 2;
    }
    Vec::new()
}

/// Every process we can see right now (a snapshot: processes come and go while it is
/// taken, and callers re-check what they act on).
pub fn all_processes() -> Vec<ProcInfo> {
    all_pids()
        .into_iter()
        .filter_map(Pid::new)
        .filter_map(proc_info)
        .collect()
}

/// Whether the kernel lists a process's children, which the walk down the server's
/// tree reads: always, on macOS (`proc_listchildpids`).
pub fn children_listed() -> bool {
    true
}

/// The children of `pid`, zombies included (XNU's `proc_listpids` walks its zombie
/// list after the live one), from `proc_listchildpids`. Empty when `pid` is gone.
///
/// The kernel takes the list under its process-list lock, so one answer is
/// consistent; a full buffer may have cut the list short and is asked again with a
/// bigger one. Callers still look twice (see `crate::tree`), as on Linux.
pub fn children(pid: Pid) -> Vec<Pid> {
    let mut capacity = 64;
    for _ in 0..8 {
        let mut pids: Vec<libc::pid_t> = vec![0; capacity];
        let Ok(bytes) = libc::c_int::try_from(capacity * mem::size_of::<libc::pid_t>()) else {
            return Vec::new();
        };
        // SAFETY: proc_listchildpids writes at most `bytes` bytes, the size of
        // `pids`, and returns how many PIDs it wrote (-1 on error).
        let n = unsafe { libc::proc_listchildpids(pid.get(), pids.as_mut_ptr().cast(), bytes) };
        let Ok(n) = usize::try_from(n) else {
            return Vec::new();
        };
        if n < capacity {
            return pids[..n].iter().copied().filter_map(Pid::new).collect();
        }
        capacity *= 2;
    }
    Vec::new()
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

/// The raw `KERN_PROCARGS2` bytes of `pid` (see `procargs.rs` for their layout), or
/// `None` for a zombie, another user's process, or no process.
fn proc_args(pid: Pid) -> Option<Vec<u8>> {
    let mut argmax: libc::c_int = 0;
    let mut size = mem::size_of::<libc::c_int>();
    let mut mib = [libc::CTL_KERN, libc::KERN_ARGMAX];
    // SAFETY: sysctl writes at most `size` bytes (one int) into `argmax`, which lives
    // for the call; nothing is set (null new value).
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as libc::c_uint,
            (&mut argmax as *mut libc::c_int).cast(),
            &mut size,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    let mut buf = vec![0u8; usize::try_from(argmax).ok()?];
    let mut size = buf.len();
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid.get()];
    // SAFETY: sysctl writes at most `size` bytes into `buf` (its length) and stores
    // the length written in `size`; nothing is set.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as libc::c_uint,
            buf.as_mut_ptr().cast(),
            &mut size,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    buf.truncate(size);
    Some(buf)
}

/// The executable of `pid` (`proc_pidpath`), which any user may ask for.
fn executable_path(pid: Pid) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
    // SAFETY: proc_pidpath writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::proc_pidpath(pid.get(), buf.as_mut_ptr().cast(), buf.len() as u32) };
    let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
    buf.truncate(n);
    Some(buf)
}

fn basename(path: &[u8]) -> Option<String> {
    Path::new(OsStr::from_bytes(path))
        .file_name()
        .map(|base| base.to_string_lossy().into_owned())
}

/// The names a process is known by: its executable's basename and its `argv[0]`'s
/// basename (either may be unreadable, e.g. for another user's process).
pub fn process_names(pid: Pid) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(base) = executable_path(pid).as_deref().and_then(basename) {
        names.push(base);
    }
    let args = proc_args(pid);
    let argv0 = args
        .as_deref()
        .and_then(ProcArgs::parse)
        .and_then(|parsed| parsed.argv.first().copied());
    if let Some(base) = argv0.and_then(basename) {
        names.push(base);
    }
    names
}

/// The user ID of the process at the other end of a Unix socket, as the kernel
/// recorded it at `connect(2)` (`getpeereid`, which reads `LOCAL_PEERCRED`): it
/// cannot be forged by the peer.
pub fn peer_uid(stream: &std::os::unix::net::UnixStream) -> io::Result<u32> {
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: getpeereid writes one uid and one gid, both living for the call.
    if unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) } == 0 {
        Ok(uid)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The PID of the process at the other end of a Unix socket, as the kernel
/// recorded it at `connect(2)` (`LOCAL_PEERPID`).
pub fn peer_pid(stream: &std::os::unix::net::UnixStream) -> io::Result<Option<Pid>> {
    let mut pid: libc::pid_t = 0;
    let mut len = std::mem::size_of::<libc::pid_t>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `pid`, which lives for the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_LOCAL,
            libc::LOCAL_PEERPID,
            (&mut pid as *mut libc::pid_t).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(Pid::new(pid))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the environment of `pid` as exec laid it out (`KERN_PROCARGS2`, where it
/// follows argv) holds exactly the entry `entry` (`KEY=value`). Unreadable (another
/// user's process, a zombie) reads as no, so nothing is signalled on a guess.
pub fn environ_has(pid: Pid, entry: &str) -> bool {
    proc_args(pid).is_some_and(|buf| {
        ProcArgs::parse(&buf).is_some_and(|args| args.env.contains(&entry.as_bytes()))
    })
}

/// Longest path a Unix socket address can hold (`sun_path` is 104 bytes on macOS,
/// less its NUL).
pub const MAX_SOCKET_PATH: usize = 103;

/// What a non-blocking `connect(2)` to a Unix socket whose backlog is full fails
/// with: XNU refuses such a connection outright (`ECONNREFUSED`, as for a socket
/// nobody listens on; callers ask only a supervisor that holds its lock).
pub const BACKLOG_FULL: &[libc::c_int] = &[libc::EAGAIN, libc::ECONNREFUSED];

/// The address of the Unix socket at `path`, in the C layout `connect(2)` takes
/// (with the BSD length byte).
pub fn unix_socket_address(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() > MAX_SOCKET_PATH || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (slot, &byte) in addr.sun_path.iter_mut().zip(bytes) {
        *slot = byte as libc::c_char;
    }
    let len = 2 + bytes.len() + 1;
    addr.sun_len = len as u8;
    Ok((addr, len as libc::socklen_t))
}

/// Watches files and directories for being removed, renamed or replaced: one kqueue,
/// with an `EVFILT_VNODE` event on a descriptor of each watched file (not on the
/// directory's contents, so the activity of other files in the same directory never
/// wakes the watcher).
///
/// kqueue watches descriptors, not paths, so each watched file is held open
/// (`O_EVTONLY`: for events only, it does not keep a volume from unmounting). A file
/// is watched once however often it is asked for (by its [`FileId`]), and a watched
/// file whose last link is gone is closed at the next [`FileWatch::drain`], which
/// ends its watch as Linux's inotify ends one by itself.
///
/// Not covered: the control socket. macOS's open(2) refuses sockets (`EOPNOTSUPP`),
/// so [`FileWatch::watch_file`] on it fails, and its removal alone is noticed only
/// at the next disturbance of a watched file or of the directory.
#[derive(Debug)]
pub struct FileWatch {
    kq: OwnedFd,
    watched: Mutex<Vec<(FileId, fs::File)>>,
}

impl FileWatch {
    pub fn new() -> io::Result<FileWatch> {
        Ok(FileWatch {
            kq: new_kqueue()?,
            watched: Mutex::new(Vec::new()),
        })
    }

    /// Wakes the watcher when the directory `dir` itself is removed or renamed
    /// (not `NOTE_WRITE`, which would fire for every entry made in it).
    pub fn watch_dir(&self, dir: &Path) -> io::Result<()> {
        self.add(
            dir,
            libc::O_DIRECTORY,
            libc::NOTE_DELETE | libc::NOTE_RENAME | libc::NOTE_REVOKE,
        )
    }

    /// Wakes the watcher when the file at `path` is unlinked (`NOTE_DELETE`, and
    /// `NOTE_LINK`/`NOTE_ATTRIB` for its link count), renamed, or revoked.
    pub fn watch_file(&self, path: &Path) -> io::Result<()> {
        self.add(
            path,
            0,
            libc::NOTE_DELETE
                | libc::NOTE_RENAME
                | libc::NOTE_LINK
                | libc::NOTE_ATTRIB
                | libc::NOTE_REVOKE,
        )
    }

    fn add(&self, path: &Path, open_flags: libc::c_int, notes: u32) -> io::Result<()> {
        // O_NONBLOCK: a FIFO planted under a watched name must not block the open.
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EVTONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | open_flags)
            .open(path)?;
        let id = FileId::of(&file.metadata()?);
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        if watched.iter().any(|(seen, _)| *seen == id) {
            return Ok(());
        }
        let ident = usize::try_from(file.as_raw_fd())
            .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        register(self.kq.as_fd(), ident, libc::EVFILT_VNODE, notes)?;
        watched.push((id, file));
        Ok(())
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.kq.as_fd()
    }

    /// Consumes every queued event without blocking; whether there was any. Closes
    /// the watches of files that no longer have a name (closing a descriptor
    /// removes its events from the kqueue).
    pub fn drain(&self) -> bool {
        let any = drain_kqueue(self.kq.as_fd());
        if any {
            let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
            watched.retain(|(_, file)| file.metadata().is_ok_and(|m| m.nlink() > 0));
        }
        any
    }
}

/// Context switches of every thread of `pid`, from `proc_pidinfo(PROC_PIDTASKINFO)`:
/// how often it went to sleep, i.e. woke up. Best effort: macOS counts voluntary and
/// involuntary switches together (`pti_csw`), so this over-counts, which can only
/// make an "idle means no wake-ups" check stricter.
pub fn voluntary_context_switches(pid: Pid) -> io::Result<u64> {
    // SAFETY: proc_taskinfo is plain data; zeroed is a valid value to be overwritten.
    let mut info: libc::proc_taskinfo = unsafe { mem::zeroed() };
    let size = mem::size_of::<libc::proc_taskinfo>() as libc::c_int;
    // SAFETY: proc_pidinfo writes at most `size` bytes into `info`, which lives for
    // the call.
    let written = unsafe {
        libc::proc_pidinfo(
            pid.get(),
            libc::PROC_PIDTASKINFO,
            0,
            (&mut info as *mut libc::proc_taskinfo).cast(),
            size,
        )
    };
    if written <= 0 {
        return Err(io::Error::last_os_error());
    }
    if written != size {
        return Err(io::Error::other(
            "proc_pidinfo returned a short proc_taskinfo",
        ));
    }
    u64::try_from(info.pti_csw).map_err(|_| io::Error::other("negative context switch count"))
}

/// Whether `pid` is a kernel thread, which never exits on a user's account. Always
/// false on macOS: the kernel's threads all belong to `kernel_task`, PID 0, which
/// is no [`Pid`]; every process with a PID of its own runs user code and can exit.
pub fn is_kernel_thread(_pid: Pid) -> bool {
    false
}

/// Why there is no [`Cgroup`] on macOS, as its errors say.
const NO_CGROUPS: &str = "macOS has no cgroups (--contain group or auto contains by process group)";

/// cgroup containment does not exist on macOS: nothing there holds a process tree
/// that its members cannot leave. The type exists so that the portable code
/// compiles, but no value of it can be made: [`Cgroup::create`] is always an
/// `Unsupported` error, so `--contain auto` falls back to the process group and
/// `--contain cgroup` fails with that error, and [`Cgroup::open_existing`] refuses
/// every path (a record written on macOS never names a cgroup). The methods are
/// unreachable; the compiler proves it (`Infallible` has no values).
#[derive(Debug)]
pub struct Cgroup {
    never: std::convert::Infallible,
}

impl Cgroup {
    /// Always `Unsupported` (see the type).
    pub fn create(_name: &str) -> io::Result<Cgroup> {
        Err(io::Error::new(io::ErrorKind::Unsupported, NO_CGROUPS))
    }

    /// Always refused, as Linux refuses a path that is not an ocwrap cgroup
    /// (`InvalidInput`): nothing on macOS is one.
    pub fn open_existing(path: &Path, _name: &str) -> io::Result<Option<Cgroup>> {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not an ocwrap cgroup: {NO_CGROUPS}", path.display()),
        ))
    }

    pub fn path(&self) -> &Path {
        match self.never {}
    }

    pub fn can_kill(&self) -> bool {
        match self.never {}
    }

    pub fn enter_before_exec(&self, _command: &mut Command) -> io::Result<()> {
        match self.never {}
    }

    pub fn members(&self) -> io::Result<Vec<Pid>> {
        match self.never {}
    }

    pub fn holds(&self, _pid: Pid) -> io::Result<bool> {
        match self.never {}
    }

    pub fn is_populated(&self) -> io::Result<bool> {
        match self.never {}
    }

    pub fn events_fd(&self) -> BorrowedFd<'_> {
        match self.never {}
    }

    pub fn kill(&self) -> io::Result<bool> {
        match self.never {}
    }

    pub fn wait_empty(&self, _timeout: Duration) -> io::Result<bool> {
        match self.never {}
    }

    pub fn remove(self) -> io::Result<()> {
        match self.never {}
    }
}

/// The cgroups inside this process's own cgroup: `Unsupported` on macOS, so the
/// sweep of dead supervisors' cgroups finds none.
pub fn own_child_cgroups() -> io::Result<Vec<PathBuf>> {
    Err(io::Error::new(io::ErrorKind::Unsupported, NO_CGROUPS))
}

/// Removes an empty cgroup: `Unsupported` on macOS (there is none to remove).
pub fn remove_empty_cgroup(_path: &Path) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, NO_CGROUPS))
}
/// How many TCP connections are established with local port `port`. Not built on
/// macOS (it would read the kernel's PCB list through `sysctl net.inet.tcp.pcblist_n`):
/// the error makes `--idle-timeout` count the server as busy, so it never tears
/// down early, and never on idleness.
pub fn established_connections(_port: u16) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "counting a port's connections is not built on macOS",
    ))
}

/// Linux unmaps the start-up pages of its own code once the server is ready; macOS
/// keeps them (not designed for it: nothing measured there).
pub fn release_startup_pages() {}
