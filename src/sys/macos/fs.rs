//! The state dir, on macOS: watching files and directories for being removed,
//! renamed or replaced, with a kqueue and `EVFILT_VNODE` on a descriptor of each. What
//! Linux checks alike (modes, locks, safe opens) is `sys/unix/fs.rs`. Type-checked
//! only. See `docs/DESIGN.md`, section "Platform seam".

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use super::{drain_kqueue, new_kqueue, register};
use crate::sys::unix::FileId;

/// Watches files and directories for being removed, renamed or replaced: one kqueue,
/// with an `EVFILT_VNODE` event on a descriptor of each watched file (not on the
/// directory's contents, so the activity of other files in the same directory never
/// wakes the watcher).
///
/// kqueue watches descriptors, not paths, so each watched file is held open
/// (`O_EVTONLY`: for events only, it does not keep a volume from unmounting). A file
/// is watched once however often it is asked for (by its [`FileId`]), and a watched
/// file whose last link is gone is closed at the next [`FileWatch::drain`], which
/// ends its watch as Linux's inotify ends one by itself.
///
/// Not covered: the control socket. macOS's open(2) refuses sockets (`EOPNOTSUPP`),
/// so [`FileWatch::watch_file`] on it fails, and its removal alone is noticed only
/// at the next disturbance of a watched file or of the directory.
#[derive(Debug)]
pub struct FileWatch {
    kq: OwnedFd,
    watched: Mutex<Vec<(FileId, fs::File)>>,
}

impl FileWatch {
    pub fn new() -> io::Result<FileWatch> {
        Ok(FileWatch {
            kq: new_kqueue()?,
            watched: Mutex::new(Vec::new()),
        })
    }

    /// Wakes the watcher when the directory `dir` itself is removed or renamed
    /// (not `NOTE_WRITE`, which would fire for every entry made in it).
    pub fn watch_dir(&self, dir: &Path) -> io::Result<()> {
        self.add(
            dir,
            libc::O_DIRECTORY,
            libc::NOTE_DELETE | libc::NOTE_RENAME | libc::NOTE_REVOKE,
        )
    }

    /// Wakes the watcher when the file at `path` is unlinked (`NOTE_DELETE`, and
    /// `NOTE_LINK`/`NOTE_ATTRIB` for its link count), renamed, or revoked.
    pub fn watch_file(&self, path: &Path) -> io::Result<()> {
        self.add(
            path,
            0,
            libc::NOTE_DELETE
                | libc::NOTE_RENAME
                | libc::NOTE_LINK
                | libc::NOTE_ATTRIB
                | libc::NOTE_REVOKE,
        )
    }

    fn add(&self, path: &Path, open_flags: libc::c_int, notes: u32) -> io::Result<()> {
        // O_NONBLOCK: a FIFO planted under a watched name must not block the open.
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EVTONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | open_flags)
            .open(path)?;
        let id = FileId::of(&file.metadata()?);
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        if watched.iter().any(|(seen, _)| *seen == id) {
            return Ok(());
        }
        let ident = usize::try_from(file.as_raw_fd())
            .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        register(self.kq.as_fd(), ident, libc::EVFILT_VNODE, notes)?;
        watched.push((id, file));
        Ok(())
    }

    pub(in crate::sys) fn fd(&self) -> BorrowedFd<'_> {
        self.kq.as_fd()
    }

    /// Consumes every queued event without blocking; whether there was any. Closes
    /// the watches of files that no longer have a name (closing a descriptor
    /// removes its events from the kqueue).
    pub fn drain(&self) -> bool {
        let any = drain_kqueue(self.kq.as_fd());
        if any {
            let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
            watched.retain(|(_, file)| file.metadata().is_ok_and(|m| m.nlink() > 0));
        }
        any
    }
}
