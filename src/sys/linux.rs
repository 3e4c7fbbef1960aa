//! Linux implementation of the platform seam.
//!
//! Process facts come from `/proc`; process identity is pinned with pidfds
//! (`pidfd_open(2)`, Linux ≥ 5.3) so that a signal can never reach a recycled PID;
//! children are set up between fork and exec with `PR_SET_PDEATHSIG`. Every `unsafe`
//! block carries a `// SAFETY:` comment saying why the call is sound.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::process::{Pid, ProcInfo, RunState, StartTime};

/// Makes this process a child subreaper: orphans below it (a server's grandchildren,
/// or a descendant that `setsid`+double-forked out of the group) reparent to it
/// instead of to init, so it can find them, tear them down and reap them.
pub fn become_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument and
    // touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Arranges for the spawned command to die with this process and to start with the
/// signal dispositions a fresh program expects.
///
/// Between fork and exec the child asks for SIGKILL on its parent's death, then
/// compares `getppid()` with `supervisor` (our PID saved before the fork): if we died
/// before the prctl took effect, the child was already reparented and the death
/// signal will never come, so it refuses to exec. Comparing with 1 would be wrong
/// under a subreaper or in a PID namespace. SIGTTIN/SIGTTOU are reset because
/// ignored dispositions survive exec and the supervisor ignores both.
pub fn die_with_supervisor(command: &mut Command, supervisor: Pid) {
    let expected_parent = supervisor.get();
    let hook = move || -> io::Result<()> {
        // SAFETY: prctl, getppid and signal are async-signal-safe; between fork and
        // exec we touch no allocator, no lock and no memory shared with the parent.
        unsafe {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
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
pub fn writable_now(fd: BorrowedFd<'_>) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLOUT != 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP) == 0
}

/// Test fixture: forks `count` idle children, standing for the unrelated processes
/// of a busy host. Each blocks every signal it can and sleeps until its parent dies
/// (`PR_SET_PDEATHSIG` SIGKILL), so a signal anyone sends it stays pending, where
/// [`pending_signals`] shows it. Returns their PIDs; stops at the first failed fork.
pub fn fork_idle_children(count: usize) -> io::Result<Vec<Pid>> {
    let parent = Pid::current().get();
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        // SAFETY: the child only runs `idle_until_parent_dies`, which makes
        // async-signal-safe calls and never returns into Rust code, so forking a
        // process that may have other threads is sound.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => return Err(io::Error::last_os_error()),
            0 => idle_until_parent_dies(parent),
            pid => children.extend(Pid::new(pid)),
        }
    }
    Ok(children)
}

/// The body of a child of [`fork_idle_children`]; never returns.
fn idle_until_parent_dies(parent: libc::pid_t) -> ! {
    // SAFETY: only async-signal-safe calls (we may have been forked from a process
    // with other threads); `set` lives on this stack frame for the calls using it.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        if libc::getppid() != parent {
            libc::_exit(1);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        loop {
            libc::pause();
        }
    }
}

/// Test fixture: ends the calling thread and nothing else (the raw `exit` system
/// call, not `exit_group`). Called on the main thread while others run, it leaves
/// a process whose thread-group leader is a zombie and which is alive all the same.
pub fn exit_this_thread() -> ! {
    // SAFETY: SYS_exit ends only the calling thread and never returns; no Rust
    // frame is unwound, and the other threads own everything they use.
    unsafe {
        libc::syscall(libc::SYS_exit, 0);
    }
    unreachable!("the exit system call returned")
}

/// The signals pending for `pid` (its own and its thread group's, from
/// `/proc/PID/status`) as a bit set, bit n-1 for signal n; `None` when it is gone.
pub fn pending_signals(pid: Pid) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    Some(mask("SigPnd:")? | mask("ShdPnd:")?)
}

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

    /// Sends a signal through the pidfd: it reaches the process the pidfd was opened
    /// on, or nobody (`ESRCH`), never a newcomer with the same PID.
    pub fn send_signal(&self, signal: libc::c_int) -> io::Result<()> {
        // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
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

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Whether this kernel has pidfds (Linux ≥ 5.3) and lets us use them.
pub fn pidfd_supported() -> bool {
    PidFd::open(Pid::current()).is_ok()
}

/// Starts a TCP connection to `addr` without waiting for it: the returned stream is
/// non-blocking and becomes writable when the connection is made or has failed
/// (then `take_error` says why). Readiness probes run in the supervisor's loop this
/// way, so a slow server can never block it.
pub fn connect_nonblocking(addr: &std::net::SocketAddr) -> io::Result<std::net::TcpStream> {
    let (domain, storage, len) = socket_address(addr);
    // SAFETY: socket takes plain integers and returns a new descriptor or -1.
    let raw = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
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

/// A socket address in the C layout `connect(2)` takes.
fn socket_address(
    addr: &std::net::SocketAddr,
) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        std::net::SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large enough and aligned for any sockaddr.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            (
                libc::AF_INET,
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        std::net::SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            (
                libc::AF_INET6,
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// Whether our child `pid` has exited, without reaping it (`WNOWAIT`): the server's
/// leader is left a zombie until teardown ends so that its PID, which is also its
/// process group's ID, cannot be recycled while we still signal that group.
pub fn has_exited(pid: Pid) -> io::Result<bool> {
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
pub fn exited_successfully(pid: Pid) -> bool {
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

/// One process from `/proc/PID/stat`, or `None` when there is no such process.
pub fn proc_info(pid: Pid) -> Option<ProcInfo> {
    proc_lookup(pid).ok().flatten()
}

/// One process: `Ok(None)` only when there is no such process (its `/proc` entry
/// is missing or empty); an `Err` when we could not look (out of descriptors or
/// memory, say). A caller that would end a lease on "gone" must not take a failed
/// look for one.
pub fn proc_lookup(pid: Pid) -> io::Result<Option<ProcInfo>> {
    // A stat line is well under 1 KiB; one read, no size query (tree walks call
    // this once per process).
    let mut text = [0u8; 1024];
    let mut file = match fs::File::open(format!("/proc/{pid}/stat")) {
        Ok(file) => file,
        Err(e) if is_no_such_process(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    match io::Read::read(&mut file, &mut text) {
        Ok(n) => Ok(parse_stat(pid, &text[..n])),
        // The process was released between the open and the read.
        Err(e) if is_no_such_process(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a `/proc/PID` access failed because the process does not exist.
fn is_no_such_process(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ESRCH) | Some(libc::ENOTDIR)
    )
}

/// Every process visible in `/proc` right now (a snapshot: processes come and go
/// while it is taken, and callers re-check what they act on).
pub fn all_processes() -> Vec<ProcInfo> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(Pid::new)
        .filter_map(proc_info)
        .collect()
}

/// Whether this kernel lists children in `/proc/PID/task/TID/children`
/// (`CONFIG_PROC_CHILDREN`), which the walk down the server's tree reads.
pub fn children_listed() -> bool {
    let me = Pid::current();
    Path::new(&format!("/proc/{me}/task/{me}/children")).exists()
}

/// The children of `pid`, zombies included, from `/proc/PID/task/TID/children` of
/// every thread: a child belongs to the thread that forked it, and an orphan to
/// whichever thread of its subreaper the kernel picked. Empty when `pid` is gone.
///
/// The kernel builds that file a page at a time and drops its locks in between, so
/// a child forked or reaped while it is read can be missed: callers that need the
/// whole tree read it again until two readings agree (see `crate::tree`).
pub fn children(pid: Pid) -> Vec<Pid> {
    let task_dir = format!("/proc/{pid}/task");
    // A task directory links one entry per thread plus `.` and `..`: a process
    // with one thread (most of them) needs no directory listing.
    let tasks: Vec<std::path::PathBuf> = match fs::metadata(&task_dir) {
        Err(_) => return Vec::new(),
        Ok(meta) if std::os::unix::fs::MetadataExt::nlink(&meta) <= 3 => {
            vec![Path::new(&task_dir).join(pid.to_string())]
        }
        Ok(_) => match fs::read_dir(&task_dir) {
            Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
            Err(_) => return Vec::new(),
        },
    };
    let mut found = Vec::new();
    let mut text = Vec::new();
    for task in tasks {
        text.clear();
        let read = fs::File::open(task.join("children"))
            .and_then(|mut f| io::Read::read_to_end(&mut f, &mut text));
        if read.is_ok() {
            found.extend(
                text.split(|b| b.is_ascii_whitespace())
                    .filter_map(|w| std::str::from_utf8(w).ok()?.parse::<i32>().ok())
                    .filter_map(Pid::new),
            );
        }
    }
    found
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

/// Parses `/proc/PID/stat`. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat(pid: Pid, text: &[u8]) -> Option<ProcInfo> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    let number = |n: usize| fields.get(n - 3)?.parse::<i64>().ok();
    // The state letter is the thread-group leader's. A leader that ended its own
    // thread (`pthread_exit`, or the raw `exit` system call) shows `Z` while the
    // rest of the process runs on; the kernel keeps the zombie leader counted in
    // the process's threads (field 20) until the last one exits, so a count above
    // one means a live process.
    let state = match fields.first()? {
        &"Z" | &"X" | &"x" if number(20).is_none_or(|threads| threads <= 1) => RunState::Dead,
        _ => RunState::Live,
    };
    Some(ProcInfo {
        pid,
        ppid: Pid::new(number(4)? as i32),
        pgid: Pid::new(number(5)? as i32),
        sid: Pid::new(number(6)? as i32),
        start: StartTime(u64::try_from(number(22)?).ok()?),
        state,
    })
}

/// The names a process is known by: its executable's basename and its `argv[0]`'s
/// basename (either may be unreadable, e.g. for another user's process).
pub fn process_names(pid: Pid) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) {
        let exe = exe.to_string_lossy();
        // A replaced binary reads as "/path/name (deleted)".
        let exe = exe.trim_end_matches(" (deleted)");
        if let Some(base) = Path::new(exe).file_name() {
            names.push(base.to_string_lossy().into_owned());
        }
    }
    if let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) {
        let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
        if let Some(base) = Path::new(OsStr::from_bytes(argv0)).file_name() {
            names.push(base.to_string_lossy().into_owned());
        }
    }
    names
}

/// The user ID of the process at the other end of a Unix socket, as the kernel
/// recorded it at `connect(2)` (`SO_PEERCRED`): it cannot be forged by the peer.
pub fn peer_uid(stream: &std::os::unix::net::UnixStream) -> io::Result<u32> {
    peer_credentials(stream).map(|cred| cred.uid)
}

/// The PID of the process at the other end of a Unix socket, as the kernel
/// recorded it at `connect(2)` (`SO_PEERCRED`) and translated into our PID
/// namespace: `None` when the peer is outside it (the kernel says 0).
pub fn peer_pid(stream: &std::os::unix::net::UnixStream) -> io::Result<Option<Pid>> {
    peer_credentials(stream).map(|cred| Pid::new(cred.pid))
}

fn peer_credentials(stream: &std::os::unix::net::UnixStream) -> io::Result<libc::ucred> {
    // SAFETY: ucred is plain data; zeroed is a valid value to be overwritten.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which lives for the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(cred)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the initial environment of `pid` (`/proc/PID/environ`, as it was at
/// exec) holds exactly the entry `entry` (`KEY=value`).
pub fn environ_has(pid: Pid, entry: &str) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|&b| b == 0).any(|e| e == entry.as_bytes()))
        .unwrap_or(false)
}

/// Longest path a Unix socket address can hold (`sun_path` less its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// What a non-blocking `connect(2)` to a Unix socket whose backlog is full fails
/// with.
pub const BACKLOG_FULL: &[libc::c_int] = &[libc::EAGAIN];

/// The address of the Unix socket at `path`, in the C layout `connect(2)` takes.
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
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// Watches files and directories for being removed, renamed or replaced
/// (inotify on each of them, not on the directory's contents, so the activity of
/// other files in the same directory never wakes the watcher).
#[derive(Debug)]
pub struct FileWatch {
    fd: OwnedFd,
}

impl FileWatch {
    pub fn new() -> io::Result<FileWatch> {
        // SAFETY: inotify_init1 takes flags and returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
        Ok(FileWatch {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Wakes the watcher when the directory `dir` itself is removed or renamed.
    pub fn watch_dir(&self, dir: &Path) -> io::Result<()> {
        self.add(
            dir,
            libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_ONLYDIR,
        )
    }

    /// Wakes the watcher when the file at `path` is unlinked (its link count
    /// changes: `IN_ATTRIB`), renamed, or deleted. A watch on a file that goes away
    /// ends by itself.
    pub fn watch_file(&self, path: &Path) -> io::Result<()> {
        self.add(
            path,
            libc::IN_ATTRIB | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF,
        )
    }

    fn add(&self, path: &Path, mask: u32) -> io::Result<()> {
        let path = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a valid inotify descriptor and a NUL-terminated path that lives
        // for the call.
        let wd = unsafe {
            libc::inotify_add_watch(
                self.fd.as_raw_fd(),
                path.as_ptr(),
                mask | libc::IN_DONT_FOLLOW,
            )
        };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Consumes every queued event without blocking; whether there was any.
    pub fn drain(&self) -> bool {
        let mut any = false;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: read into a buffer we own, at most its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return any;
            }
            any = true;
        }
    }
}

/// Voluntary context switches of every thread of `pid` (from
/// `/proc/PID/task/*/status`): how often it went to sleep, i.e. woke up.
pub fn voluntary_context_switches(pid: Pid) -> io::Result<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = fs::read_to_string(task?.path().join("status"))?;
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

/// Whether `pid` is a kernel thread (`PF_KTHREAD` in the flags, field 9 of
/// `/proc/PID/stat`). A kernel thread never exits on a user's account, so it can
/// never be an owner that dies. False when there is no such process.
pub fn is_kernel_thread(pid: Pid) -> bool {
    fs::read(format!("/proc/{pid}/stat")).is_ok_and(|text| stat_has_kthread_flag(&text))
}

/// `PF_KTHREAD` from `include/linux/sched.h`; the libc crate does not export it.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Whether the flags word (field 9) of a `/proc/PID/stat` text has `PF_KTHREAD`.
/// Fields are counted from the last `)`, as in [`parse_stat`].
fn stat_has_kthread_flag(text: &[u8]) -> bool {
    let Some(close) = text.iter().rposition(|&b| b == b')') else {
        return false;
    };
    std::str::from_utf8(&text[close + 1..])
        .ok()
        .and_then(|rest| {
            rest.split_ascii_whitespace()
                .nth(9 - 3)?
                .parse::<u64>()
                .ok()
        })
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// Unmaps from this process the pages of ocwrap's own read-only segments (code and
/// constants) that are mapped now.
///
/// Start-up (argument parsing, the spawn, the first record) runs code that an idle
/// supervisor never runs again, and the kernel maps file pages around every fault
/// (fault-around, 64 KiB by default), so a freshly started supervisor maps nearly
/// its whole binary. Called once start-up is over, this leaves mapped only the
/// pages the loop touches from then on. The pages stay in the page cache; nothing
/// is written, and a page that is needed again is mapped again on its next use.
/// Writable segments (data, relocated read-only data) are never touched: their
/// pages are private copies that cannot be read back from the file.
pub fn release_startup_pages() {
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let Ok(page) = usize::try_from(page) else {
        return;
    };
    if page == 0 {
        return;
    }
    // SAFETY: dl_iterate_phdr calls `each` with a pointer to a valid
    // dl_phdr_info for every loaded object, the executable first; `data` is a
    // pointer to `page`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(each), (&raw const page).cast_mut().cast());
    }

    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `page` passed above, and `info` points to the
        // loader's description of the executable, valid for this call; its
        // `dlpi_phdr` array has `dlpi_phnum` entries.
        let (page, info) = unsafe { (*data.cast::<usize>(), &*info) };
        // SAFETY: as above: a valid array of `dlpi_phnum` program headers.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        for header in headers {
            if header.p_type != libc::PT_LOAD || header.p_flags & libc::PF_W != 0 {
                continue;
            }
            let start = (info.dlpi_addr as usize).wrapping_add(header.p_vaddr as usize);
            let end = start.wrapping_add(header.p_memsz as usize);
            // Whole pages inside the segment only: a page shared with a writable
            // segment keeps its private contents.
            let first = start.div_ceil(page) * page;
            let last = end / page * page;
            if last > first {
                // SAFETY: [first, last) lies within a read-only, file-backed
                // mapping of the executable whose pages were never written:
                // MADV_DONTNEED unmaps them, and the next access reads them back
                // from the file, unchanged.
                unsafe {
                    libc::madvise(
                        first as *mut libc::c_void,
                        last - first,
                        libc::MADV_DONTNEED,
                    )
                };
            }
        }
        // The executable is the first object; the rest (the vDSO, shared
        // libraries of a dynamic build) are not ours to trim.
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = b"4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        let info = parse_stat(Pid::new(4242).unwrap(), line).unwrap();
        assert_eq!(info.ppid, Pid::new(17));
        assert_eq!(info.pgid, Pid::new(4242));
        assert_eq!(info.start, StartTime(987654));
        assert_eq!(info.state, RunState::Live);
    }

    #[test]
    fn zombies_read_as_dead() {
        let line = b"7 (z) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0 0";
        assert_eq!(
            parse_stat(Pid::new(7).unwrap(), line).unwrap().state,
            RunState::Dead
        );
    }

    #[test]
    fn a_zombie_leader_with_live_threads_reads_as_live() {
        // Field 20 (threads) is 3: the leader exited, two threads run on.
        let line = b"7 (z) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 3 0 55 0 0 0";
        assert_eq!(
            parse_stat(Pid::new(7).unwrap(), line).unwrap().state,
            RunState::Live
        );
    }

    #[test]
    fn this_process_is_visible_with_a_start_time() {
        let me = proc_info(Pid::current()).unwrap();
        assert!(me.is_live());
        assert_eq!(me.ppid, Pid::parent());
    }

    #[test]
    fn kernel_threads_are_told_by_their_flags() {
        let kthreadd = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 24 0 0";
        assert!(stat_has_kthread_flag(kthreadd));
        let user = b"4242 (a (b) 2129984) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20";
        assert!(!stat_has_kthread_flag(user));
        assert!(!stat_has_kthread_flag(b"garbage"));
        assert!(!is_kernel_thread(Pid::current()));
    }
}
