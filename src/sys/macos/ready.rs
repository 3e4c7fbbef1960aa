//! Declared readiness, on macOS: no notify socket. macOS's datagram sockets do
//! not say who sent a message, so `READY=1` from outside the server's tree could
//! not be told apart; `--ready notify` is refused here (`--ready fd:N` is built,
//! in `sys/unix/ready.rs`). See `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::path::Path;

use crate::sys::{FileId, NotifyMessage, Waitable};

/// `--ready notify` is not built here.
pub const NOTIFY_READINESS: bool = false;

/// No notify socket exists here: the type has no value.
#[derive(Debug)]
pub enum NotifySocket {}

impl NotifySocket {
    pub fn bind(_path: &Path) -> io::Result<NotifySocket> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "--ready notify is not built on macOS",
        ))
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
