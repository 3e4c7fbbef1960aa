//! The network, on macOS: how many TCP connections are established on the server's
//! port, counted over the descriptors of the server's tree (for `--idle-timeout`,
//! see `crate::idle`), so the cost follows the tree and never the host. The
//! readiness probe's connect is `sys/unix/net.rs`. Type-checked only. See
//! `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::mem;

use super::sockinfo::{SocketFdInfo, count_established};
use crate::process::Pid;

/// The most descriptors read of one process: far more than a server holds, and a
/// bound on what a sample costs.
const MAX_FDS: usize = 65_536;

/// How many TCP connections are established with local port `port`, IPv4 and IPv6
/// together, in the processes `tree` names (the server's tree, read only when a
/// sample is due): for each, its descriptors (`proc_pidinfo(PROC_PIDLISTFDS)`),
/// and for each socket among them `proc_pidfdinfo(PROC_PIDFDSOCKETINFO)`, read
/// by `sockinfo.rs`. A connection the server accepted is a descriptor of one of
/// its processes, so none is missed; one socket shared by several descriptors
/// counts once (a connection held only by a descendant that double-forked out of
/// the walk is not seen). A process that exited in between is skipped; one whose
/// descriptors cannot be read at all makes the count unknown (an error), which
/// `--idle-timeout` takes as busy.
pub fn established_connections(port: u16, tree: impl FnOnce() -> Vec<Pid>) -> io::Result<usize> {
    let mut answers = Vec::new();
    for pid in tree() {
        match sockets_of(pid) {
            Ok(found) => answers.extend(found),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(count_established(&answers, port))
}

/// What `proc_pidfdinfo` says of each socket descriptor of `pid`.
fn sockets_of(pid: Pid) -> io::Result<Vec<SocketFdInfo>> {
    let entry = mem::size_of::<libc::proc_fdinfo>();
    let needed = list_fds(pid, None)?;
    if needed == 0 {
        return Ok(Vec::new());
    }
    // Room for a few more descriptors opened since the size was asked.
    let count = (needed / entry + 16).min(MAX_FDS);
    let mut fds = vec![
        libc::proc_fdinfo {
            proc_fd: 0,
            proc_fdtype: 0,
        };
        count
    ];
    let written = list_fds(pid, Some(&mut fds))?;
    fds.truncate(written / entry);
    let mut sockets = Vec::new();
    for fd in fds
        .iter()
        .filter(|fd| fd.proc_fdtype == libc::PROX_FDTYPE_SOCKET as u32)
    {
        let mut info = SocketFdInfo::zeroed();
        let want = mem::size_of::<SocketFdInfo>() as libc::c_int;
        // SAFETY: the kernel writes at most `want` bytes into `info`, a plain
        // `repr(C)` struct of that size (checked at compile time in
        // `sockinfo.rs`) that lives for the call.
        let got = unsafe {
            libc::proc_pidfdinfo(
                pid.get(),
                fd.proc_fd,
                PROC_PIDFDSOCKETINFO,
                (&raw mut info).cast(),
                want,
            )
        };
        // A descriptor closed in between, or replaced by another kind, is skipped.
        if got == want {
            sockets.push(info);
        }
    }
    Ok(sockets)
}

/// `PROC_PIDFDSOCKETINFO` from `sys/proc_info.h` (not in the `libc` crate).
const PROC_PIDFDSOCKETINFO: libc::c_int = 3;

/// `proc_pidinfo(PROC_PIDLISTFDS)`: the bytes of `pid`'s descriptor list written
/// into `into`, or with `None` the bytes the list needs. libproc answers 0 both
/// for a failure and for an empty list; `errno`, cleared first, tells them apart.
fn list_fds(pid: Pid, into: Option<&mut [libc::proc_fdinfo]>) -> io::Result<usize> {
    let (buffer, size) = match into {
        Some(fds) => (
            fds.as_mut_ptr().cast(),
            libc::c_int::try_from(mem::size_of_val(fds)).unwrap_or(libc::c_int::MAX),
        ),
        None => (std::ptr::null_mut(), 0),
    };
    // SAFETY: `__error` returns this thread's `errno` slot, always valid to write.
    unsafe {
        *libc::__error() = 0;
    }
    // SAFETY: `buffer` is NULL with size 0 (a size query), or `fds`, which holds
    // `size` bytes (at most) and lives for the call; the kernel writes no more.
    let answered = unsafe { libc::proc_pidinfo(pid.get(), libc::PROC_PIDLISTFDS, 0, buffer, size) };
    if answered > 0 {
        return Ok(usize::try_from(answered).unwrap_or(0));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error().is_some_and(|n| n != 0) {
        Err(e)
    } else {
        Ok(0)
    }
}

/// `--idle-timeout` cannot count a local socket's connections here: not built.
pub const SOCKET_CONNECTIONS_COUNTED: bool = false;

/// Not built on macOS (`SOCKET_CONNECTIONS_COUNTED`): config refuses the option.
pub fn socket_connections(_path: &std::path::Path) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "counting a local socket's connections is not built on macOS",
    ))
}
