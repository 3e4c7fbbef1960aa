//! The network, on Unix: the readiness probe's TCP connection, started without
//! waiting and driven by the supervisor's loop. See `docs/DESIGN.md`, sections
//! "Readiness" and "Platform seam".

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;

use super::{Interest, Waitable};
use crate::sys::os;

/// A non-blocking TCP connection under way, for the readiness probe.
#[derive(Debug)]
pub struct Connection(TcpStream);

impl Connection {
    /// Starts connecting to `addr` without waiting (see [`os::connect_nonblocking`]).
    pub fn start(addr: &SocketAddr) -> io::Result<Connection> {
        os::connect_nonblocking(addr).map(Connection)
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
