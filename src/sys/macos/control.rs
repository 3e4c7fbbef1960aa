//! The control socket, on macOS: the peer's credentials (`getpeereid`,
//! `LOCAL_PEERPID`) and the layout of a Unix socket address (with its BSD length
//! byte). The socket itself is `sys/unix/control.rs`. Type-checked only. See
//! `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::process::Pid;

/// The user ID of the process at the other end of a Unix socket, as the kernel
/// recorded it at `connect(2)` (`getpeereid`, which reads `LOCAL_PEERCRED`): it
/// cannot be forged by the peer.
pub(in crate::sys) fn peer_uid(stream: &std::os::unix::net::UnixStream) -> io::Result<u32> {
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
pub(in crate::sys) fn peer_pid(stream: &std::os::unix::net::UnixStream) -> io::Result<Option<Pid>> {
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

/// Longest path a Unix socket address can hold (`sun_path` is 104 bytes on macOS,
/// less its NUL).
pub(in crate::sys) const MAX_SOCKET_PATH: usize = 103;

/// What a non-blocking `connect(2)` to a Unix socket whose backlog is full fails
/// with: XNU refuses such a connection outright (`ECONNREFUSED`, as for a socket
/// nobody listens on; callers ask only a supervisor that holds its lock).
pub(in crate::sys) const BACKLOG_FULL: &[libc::c_int] = &[libc::EAGAIN, libc::ECONNREFUSED];

/// The address of the Unix socket at `path`, in the C layout `connect(2)` takes
/// (with the BSD length byte).
pub(in crate::sys) fn unix_socket_address(
    path: &Path,
) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
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
