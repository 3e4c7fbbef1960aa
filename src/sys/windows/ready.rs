//! Declared readiness, on Windows: neither form is built. A server's descriptor N
//! has no meaning here, and Windows has no datagram socket that says who sent a
//! message; `--ready notify` and `--ready fd:N` are refused. See `docs/DESIGN.md`,
//! section "Platform seam".

use std::io;

use crate::sys::Waitable;

pub use crate::sys::unbuilt::NotifySocket;

/// `--ready fd:N` is not built here.
pub const FD_READINESS: bool = false;
/// `--ready notify` is not built here.
pub const NOTIFY_READINESS: bool = false;

/// No readiness pipe exists here: the type has no value.
#[derive(Debug)]
pub enum ReadyFd {}

impl ReadyFd {
    pub fn new(_number: u32) -> io::Result<ReadyFd> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "--ready fd:N is not built on Windows",
        ))
    }

    pub fn close_write_end(&mut self) {
        match *self {}
    }

    pub fn waitable(&self) -> Waitable<'_> {
        match *self {}
    }

    pub fn read(&self, _buf: &mut [u8]) -> io::Result<usize> {
        match *self {}
    }
}
