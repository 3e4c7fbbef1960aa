//! The control channel, on Unix: a Unix socket per name, non-blocking, with a
//! descriptor held in reserve for when the process has none left; the user at the
//! other end, and this process's. Peer credentials and addresses are per OS
//! (`linux/control.rs`, `macos/control.rs`). See `docs/DESIGN.md`, "Control protocol".

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Instant;

use super::{Interest, Waitable, effective_uid, poll, set_nonblocking};
use crate::process::Pid;
use crate::sys::os;

/// Who runs a process: a user ID.
pub type UserId = u32;

/// The user this process runs as (its effective uid).
pub fn current_user() -> UserId {
    effective_uid()
}

/// Longest control socket path (`sun_path` less its NUL).
pub const MAX_CONTROL_PATH: usize = os::MAX_SOCKET_PATH;

/// Whether several connections can wait for the control listener at once: a Unix
/// socket's listen backlog holds them until they are accepted.
pub const CONTROL_BACKLOG: bool = true;

/// The supervisor's listening control socket, non-blocking, with one descriptor
/// held in reserve (a duplicate of the listener) for accepting when the process
/// is out of descriptors.
#[derive(Debug)]
pub struct ControlListener {
    listener: UnixListener,
    reserve: Option<OwnedFd>,
    took_reserve: bool,
}

impl ControlListener {
    /// Binds a new socket at `path` (which must not exist).
    pub fn bind(path: &Path) -> io::Result<ControlListener> {
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let reserve = listener.as_fd().try_clone_to_owned().ok();
        Ok(ControlListener {
            listener,
            reserve,
            took_reserve: false,
        })
    }

    /// The next pending connection, without waiting: `None` when there is none
    /// (or accepting failed), `Some(Err)` for one that could not be set up.
    ///
    /// Out of descriptors, a pending connection would keep the listener readable
    /// and the loop spinning; so the reserve is closed to make room for it, and
    /// [`ControlListener::took_reserve`] says that it must be refused and closed.
    /// The reserve is taken again at the next call.
    pub fn accept(&mut self) -> Option<io::Result<ControlStream>> {
        self.took_reserve = false;
        if self.reserve.is_none() {
            self.reserve = self.listener.as_fd().try_clone_to_owned().ok();
        }
        let stream = match self.listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if is_out_of_descriptors(&e) && self.reserve.take().is_some() => {
                let (stream, _) = self.listener.accept().ok()?;
                self.took_reserve = true;
                stream
            }
            Err(_) => return None,
        };
        Some(stream.set_nonblocking(true).map(|()| ControlStream(stream)))
    }

    /// Whether the last connection accepted used the reserve descriptor: the
    /// process is out of descriptors, and the connection must be refused.
    pub fn took_reserve(&self) -> bool {
        self.took_reserve
    }

    /// Readable when a connection is pending.
    pub fn waitable(&self) -> Waitable<'_> {
        self.listener.as_fd()
    }
}

/// Whether `error` says the process (or the system) is out of descriptors.
pub fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE)
    )
}

/// One control connection, non-blocking.
#[derive(Debug)]
pub struct ControlStream(UnixStream);

impl ControlStream {
    /// Two connected ends, both non-blocking (for tests).
    pub fn pair() -> io::Result<(ControlStream, ControlStream)> {
        let (a, b) = UnixStream::pair()?;
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        Ok((ControlStream(a), ControlStream(b)))
    }

    /// A client's end, connected to the control socket at `path`, without
    /// waiting: a listener whose backlog is full (a stopped supervisor's fills
    /// up) is `WouldBlock`, where a blocking connect would wait until it accepts.
    pub fn connect(path: &Path) -> io::Result<ControlStream> {
        let (addr, len) = os::unix_socket_address(path)?;
        // SAFETY: socket takes plain integers and returns a new descriptor or -1.
        let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: F_SETFD on a descriptor we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        set_nonblocking(fd.as_fd(), true)?;
        // SAFETY: `addr` is a valid Unix socket address of `len` bytes for the call.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if rc != 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                // Under way: the first write waits until it is made.
                Some(libc::EINPROGRESS) => {}
                Some(code) if os::BACKLOG_FULL.contains(&code) => {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                _ => return Err(err),
            }
        }
        Ok(ControlStream(UnixStream::from(fd)))
    }

    /// The descriptor to wait on for `interest`.
    pub fn waitable(&self, _interest: Interest) -> Waitable<'_> {
        self.0.as_fd()
    }

    /// Reads what has arrived: `Ok(0)` once the peer closed, `WouldBlock` when
    /// nothing has arrived yet.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.0).read(buf)
    }

    /// Writes what fits now (`WouldBlock` when nothing does).
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.0).write(buf)
    }

    /// Writes all of `data`, waiting for room at most until `deadline`.
    pub fn write_all_until(&mut self, mut data: &[u8], deadline: Instant) -> io::Result<()> {
        while !data.is_empty() {
            match self.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    poll(&[(self.0.as_fd(), Interest::Write)], Some(left))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until a newline (kept), the end of the stream, or `limit` bytes,
    /// waiting at most until `deadline`.
    pub fn read_line_until(&mut self, limit: usize, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let mut chunk = [0u8; 4096];
        while !line.contains(&b'\n') && line.len() < limit {
            let want = chunk.len().min(limit - line.len());
            match self.read(&mut chunk[..want]) {
                Ok(0) => break,
                Ok(n) => line.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    poll(&[(self.0.as_fd(), Interest::Read)], Some(left))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(line)
    }

    /// The user at the other end, as the kernel recorded it at `connect(2)`.
    pub fn peer_user(&self) -> io::Result<UserId> {
        os::peer_uid(&self.0)
    }

    /// The process at the other end, as the kernel recorded it at `connect(2)`,
    /// in our PID namespace: `None` when it is outside it.
    pub fn peer_pid(&self) -> io::Result<Option<Pid>> {
        os::peer_pid(&self.0)
    }
}

/// A few descriptors held in reserve, to be given up for a moment when the
/// process has none left: a look at a process, or a pidfd opened only to send
/// one signal and the look that checks it, then closed (see `crate::tree`).
#[derive(Debug)]
pub struct DescriptorReserve(Vec<OwnedFd>);

/// Descriptors in a [`DescriptorReserve`]: a pidfd and a `/proc` file open at
/// once, and room to spare.
const RESERVED: usize = 4;

impl DescriptorReserve {
    pub fn new() -> DescriptorReserve {
        DescriptorReserve((0..RESERVED).filter_map(|_| reserve_descriptor()).collect())
    }

    /// Runs `f` with the reserve's descriptors free, then takes them back (as
    /// many as are free again by then).
    pub fn lend<T>(&mut self, f: impl FnOnce() -> T) -> T {
        self.0.clear();
        let out = f();
        self.0 = (0..RESERVED).filter_map(|_| reserve_descriptor()).collect();
        out
    }
}

impl Default for DescriptorReserve {
    fn default() -> DescriptorReserve {
        DescriptorReserve::new()
    }
}

/// A descriptor that holds nothing: a copy of standard input (always open:
/// see [`ensure_stdio_open`](super::ensure_stdio_open)).
fn reserve_descriptor() -> Option<OwnedFd> {
    std::io::stdin().as_fd().try_clone_to_owned().ok()
}

/// This process's limit on open descriptors (the soft `RLIMIT_NOFILE`), or
/// `None` when it has none.
pub fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `limit`, which is ours and valid.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(limit.rlim_cur)
}
