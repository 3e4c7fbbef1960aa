//! The network, on macOS: a non-blocking TCP connect for the readiness probe, and no
//! count of a port's established connections (not built: `--idle-timeout` then
//! counts the server as busy). Type-checked only. See `docs/DESIGN.md`, section
//! "Platform seam".

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::{mem, ptr};

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
pub(in crate::sys) fn connect_nonblocking(
    addr: &std::net::SocketAddr,
) -> io::Result<std::net::TcpStream> {
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
    crate::sys::unix::set_nonblocking(fd.as_fd(), true)?;
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
