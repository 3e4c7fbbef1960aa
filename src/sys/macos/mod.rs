//! macOS's side of the platform seam: what macOS answers differently from Linux
//! (`proc_pidinfo`, kqueues, `getpeereid`), one file per concern, with the kqueue
//! helpers they share; what the two answer alike is `sys/unix/`. **Type-checked
//! only**: `shell/xcheck.sh` compiles and lints it, no Mac has run it; it is correct
//! by reading the XNU sources and man pages. See `docs/DESIGN.md`, "Platform seam".

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::{mem, ptr};

mod contain;
mod control;
mod fixture;
mod fs;
mod leftover;
mod memory;
mod net;
mod proc;
mod procargs;
mod ready;
mod signal;
mod sockinfo;
mod spawn;
mod wait;

// Who a process is: `proc_pidinfo(PROC_PIDTBSDINFO)`; the start time is the kernel's
// `p_start` in microseconds since the epoch (fixed at fork, so a recycled PID comes
// back with another one). The kernel answers for our own user's processes only (and
// for all of them as root): another user's process reads as absent, so it is never an
// owner we can pin, nor signalled. Names, argv and environment: `proc_pidpath` and
// `sysctl(KERN_PROCARGS2)`. The walk down the tree: `proc_listchildpids`. No kernel
// threads have PIDs of their own.
pub use proc::{
    all_processes, children, children_listed, environ_has, is_kernel_thread, proc_info,
    proc_lookup, process_names,
};

// Waiting: a kqueue per owner with `EVFILT_PROC`/`NOTE_EXIT` stands in for a pidfd
// (readable once the process exits, so an idle supervisor still has no wake-ups);
// macOS cannot signal through such a handle (see `PidFd::send_signal`). The server's
// tree exiting, member by member: one kqueue (`EventSet`) watching each member's pidfd
// kqueue with `EVFILT_READ`, as Linux's epoll set watches pidfds. The hooks are for
// `sys/unix/` only.
pub use wait::{EventSet, PidFd, pidfd_supported};
pub(in crate::sys) use wait::{exited_successfully, has_exited, writable_now};

// Spawning: macOS has no child subreaper and no parent-death signal; see
// `become_child_subreaper` and `die_with_supervisor` for what holds instead (the
// tree marker, and the guard of `crate::guard`).
pub(in crate::sys) use spawn::die_with_supervisor;
pub use spawn::{GUARDING, become_child_subreaper};

// Containment: no cgroups. `Cgroup` exists but can never be made, and a dead
// supervisor leaves none.
pub use contain::Cgroup;
pub use leftover::{kill_leftover, remove_empty_leftovers};

// The state dir: files removed or replaced, a kqueue with `EVFILT_VNODE` on each.
pub use fs::FileWatch;

// The control socket: hooks for `sys/unix/control.rs` (the peer, by `getpeereid` and
// `LOCAL_PEERPID`; addresses with their length byte).
pub(in crate::sys) use control::{
    BACKLOG_FULL, MAX_SOCKET_PATH, peer_pid, peer_uid, unix_socket_address,
};

// The network: a port's established connections, counted over the descriptors of
// the server's tree (`proc_pidfdinfo(PROC_PIDFDSOCKETINFO)`, read by `sockinfo.rs`).
pub use net::{SOCKET_CONNECTIONS_COUNTED, established_connections, socket_connections};

// Declared readiness: no notify socket here.
pub use ready::{NOTIFY_READINESS, NotifySocket};

// Memory: nothing is given back after start-up.
pub use memory::release_startup_pages;

// For the tests and `src/bin/ocwrap-fixture.rs` only. No process can read another's
// pending signals here: `pending_signals` is a stand-in that only the decoys of
// `fork_idle_children` make meaningful.
pub use fixture::{
    exit_this_thread, fork_idle_children, is_no_such_process, pending_signals,
    voluntary_context_switches,
};

// ---------------------------------------------------------------------------
// The kqueue helpers that `wait.rs` and `fs.rs` share.

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
