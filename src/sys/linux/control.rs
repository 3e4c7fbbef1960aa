//! The control socket, on Linux: the peer's credentials (`SO_PEERCRED`) and the
//! layout of a Unix socket address. The socket itself is `sys/unix/control.rs`; see
//! `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::process::Pid;

/// The user ID of the process at the other end of a Unix socket, as the kernel
/// recorded it at `connect(2)` (`SO_PEERCRED`): it cannot be forged by the peer.
pub(in crate::sys) fn peer_uid(stream: &std::os::unix::net::UnixStream) -> io::Result<u32> {
    peer_credentials(stream).map(|cred| cred.uid)
}

/// The PID of the process at the other end of a Unix socket, as the kernel
/// recorded it at `connect(2)` (`SO_PEERCRED`) and translated into our PID
/// namespace: `None` when the peer is outside it (the kernel says 0).
pub(in crate::sys) fn peer_pid(stream: &std::os::unix::net::UnixStream) -> io::Result<Option<Pid>> {
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

/// Longest path a Unix socket address can hold (`sun_path` less its NUL).
pub(in crate::sys) const MAX_SOCKET_PATH: usize = 107;

/// What a non-blocking `connect(2)` to a Unix socket whose backlog is full fails
/// with.
pub(in crate::sys) const BACKLOG_FULL: &[libc::c_int] = &[libc::EAGAIN];

/// The address of the Unix socket at `path`, in the C layout `connect(2)` takes.
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
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}
