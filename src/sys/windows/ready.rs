//! Declared readiness, on Windows: neither form is built. A server's descriptor N
//! has no meaning here, and Windows has no datagram socket that says who sent a
//! message; `--ready notify` and `--ready fd:N` are refused. See `docs/DESIGN.md`,
//! section "Platform seam".

use std::io;
use std::path::Path;

use crate::sys::{FileId, NotifyMessage, Waitable};

/// `--ready fd:N` is not built here.
pub const FD_READINESS: bool = false;
/// `--ready notify` is not built here.
pub const NOTIFY_READINESS: bool = false;

fn not_built() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "declared readiness is not built on Windows",
    )
}

/// No readiness pipe exists here: the type has no value.
#[derive(Debug)]
pub enum ReadyFd {}

impl ReadyFd {
    pub fn new(_number: u32) -> io::Result<ReadyFd> {
        Err(not_built())
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

/// No notify socket exists here: the type has no value.
#[derive(Debug)]
pub enum NotifySocket {}

impl NotifySocket {
    pub fn bind(_path: &Path) -> io::Result<NotifySocket> {
        Err(not_built())
    }

    pub fn file_id(&self) -> Option<FileId> {
        match *self {}
    }

    pub fn waitable(&self) -> Waitable<'_> {
        match *self {}
    }

    pub fn receive(&self, _buf: &mut [u8]) -> io::Result<Option<NotifyMessage>> {
        match *self {}
    }
}
