//! The state dir, on Linux: watching files and directories for being removed,
//! renamed or replaced, with inotify. What macOS checks alike (modes, locks, safe
//! opens) is `sys/unix/fs.rs`; see `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Watches files and directories for being removed, renamed or replaced
/// (inotify on each of them, not on the directory's contents, so the activity of
/// other files in the same directory never wakes the watcher).
#[derive(Debug)]
pub struct FileWatch {
    fd: OwnedFd,
}

impl FileWatch {
    pub fn new() -> io::Result<FileWatch> {
        // SAFETY: inotify_init1 takes flags and returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
        Ok(FileWatch {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Wakes the watcher when the directory `dir` itself is removed or renamed.
    pub fn watch_dir(&self, dir: &Path) -> io::Result<()> {
        self.add(
            dir,
            libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_ONLYDIR,
        )
    }

    /// Wakes the watcher when the file at `path` is unlinked (its link count
    /// changes: `IN_ATTRIB`), renamed, or deleted. A watch on a file that goes away
    /// ends by itself.
    pub fn watch_file(&self, path: &Path) -> io::Result<()> {
        self.add(
            path,
            libc::IN_ATTRIB | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF,
        )
    }

    fn add(&self, path: &Path, mask: u32) -> io::Result<()> {
        let path = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a valid inotify descriptor and a NUL-terminated path that lives
        // for the call.
        let wd = unsafe {
            libc::inotify_add_watch(
                self.fd.as_raw_fd(),
                path.as_ptr(),
                mask | libc::IN_DONT_FOLLOW,
            )
        };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub(in crate::sys) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Consumes every queued event without blocking; whether there was any.
    pub fn drain(&self) -> bool {
        let mut any = false;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: read into a buffer we own, at most its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return any;
            }
            any = true;
        }
    }
}
