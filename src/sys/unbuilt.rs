//! The notify socket where it is not built (macOS, Windows): a type with no value,
//! so the portable code compiles everywhere and can never hold one. Config refuses
//! `--ready notify` there first (`NOTIFY_READINESS`); see each platform's
//! `ready.rs` for why, and `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::path::Path;

use crate::sys::{FileId, NotifyMessage, Waitable};

/// No notify socket exists here.
#[derive(Debug)]
pub enum NotifySocket {}

impl NotifySocket {
    pub fn bind(_path: &Path) -> io::Result<NotifySocket> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "--ready notify is not built on this platform",
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
