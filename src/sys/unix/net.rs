//! The network, on Unix: the readiness probe's TCP connection, started without
//! waiting (a non-blocking `connect(2)`, the address in the C layout, with the BSD
//! length byte on macOS) and driven by the supervisor's loop. See `docs/DESIGN.md`,
//! sections "Readiness" and "Platform seam".

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::{mem, ptr};

use super::{Interest, Waitable};

/// A non-blocking TCP connection under way, for the readiness probe.
#[derive(Debug)]
pub struct Connection(TcpStream);

impl Connection {
    /// Starts connecting to `addr` without waiting (see [`connect_nonblocking`]).
    pub fn start(addr: &SocketAddr) -> io::Result<Connection> {
        connect_nonblocking(addr).map(Connection)
    }

    /// The descriptor to wait on: writable once connected (or failed), readable
    /// when an answer came.
    pub fn waitable(&self, _interest: Interest) -> Waitable<'_> {
        self.0.as_fd()
    }

    /// Whether the connect has finished: `None` while it is under way.
    pub fn finished(&self) -> Option<io::Result<()>> {
        match self.0.take_error() {
            Ok(Some(e)) | Err(e) => Some(Err(e)),
            Ok(None) => match self.0.peer_addr() {
                Ok(_) => Some(Ok(())),
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => None,
                Err(e) => Some(Err(e)),
            },
        }
    }

    /// Reads what has arrived, never blocking (`WouldBlock` when nothing has).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.0).read(buf)
    }

    /// Writes what fits now, never blocking.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        (&self.0).write(buf)
    }
}

/// Starts a TCP connection to `addr` without waiting for it: the returned stream is
/// non-blocking and becomes writable when the connection is made or has failed
/// (then `take_error` says why). Readiness probes run in the supervisor's loop this
/// way, so a slow server can never block it.
fn connect_nonblocking(addr: &SocketAddr) -> io::Result<TcpStream> {
    let (domain, storage, len) = socket_address(addr);
    let fd = stream_socket(domain)?;
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
    Ok(TcpStream::from(fd))
}

/// A new TCP socket of `domain`, non-blocking and close-on-exec from the start.
#[cfg(target_os = "linux")]
fn stream_socket(domain: libc::c_int) -> io::Result<OwnedFd> {
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
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A new TCP socket of `domain`, non-blocking, close-on-exec, and never raising
/// SIGPIPE.
///
/// macOS's socket(2) takes no `SOCK_NONBLOCK`/`SOCK_CLOEXEC`, so both are set
/// right after it, before `connect`: std's own sockets have the same window, in
/// which a fork and exec on another thread would inherit the descriptor (the
/// supervisor spawns from its one thread). `SO_NOSIGPIPE` is set as std sets it on
/// its sockets: macOS has no `MSG_NOSIGNAL`, and a write to a connection the server
/// reset must fail with `EPIPE`, not raise SIGPIPE.
#[cfg(target_os = "macos")]
fn stream_socket(domain: libc::c_int) -> io::Result<OwnedFd> {
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
    super::turn_on_socket_option(fd.as_fd(), libc::SO_NOSIGPIPE)?;
    Ok(fd)
}

/// A socket address in the C layout `connect(2)` takes. On macOS, as on the other
/// BSDs, it starts with its own length (`sin_len`, `sin6_len`); Linux has no such
/// field.
fn socket_address(addr: &SocketAddr) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let len = mem::size_of::<libc::sockaddr_in>();
            let sin = libc::sockaddr_in {
                #[cfg(target_os = "macos")]
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
        SocketAddr::V6(a) => {
            let len = mem::size_of::<libc::sockaddr_in6>();
            let sin6 = libc::sockaddr_in6 {
                #[cfg(target_os = "macos")]
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

/// Longest local socket path (`sun_path` less its NUL).
pub const MAX_SOCKET_PATH: usize = crate::sys::os::MAX_SOCKET_PATH;

/// Why `path` cannot name a local socket here: on Unix any path can (its length
/// is checked against [`MAX_SOCKET_PATH`] by the caller).
pub fn socket_name_problem(_path: &str) -> Option<&'static str> {
    None
}

/// Whether `meta` (from `lstat`) is a socket.
pub fn is_socket(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_socket()
}

/// What is at `path` (never followed) when it is not a socket of this user: a
/// symlink, a directory, a FIFO, a file, another user's socket. `NotFound` when
/// nothing is there.
pub fn socket_in_the_way(path: &std::path::Path) -> io::Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    if !is_socket(&meta) {
        return Ok(Some(super::file_kind(&meta).to_string()));
    }
    let me = super::effective_uid();
    Ok((meta.uid() != me).then(|| format!("a socket of another user (uid {})", meta.uid())))
}

/// One connect to the Unix socket at `path`, never waiting, closed at once: `Ok`
/// when something listens there (a full backlog is a listener too).
pub fn socket_connect(path: &std::path::Path) -> io::Result<()> {
    match super::ControlStream::connect(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}
