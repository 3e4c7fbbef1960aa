//! The state dir, on Unix: where it is, a directory only its owner may use (owner
//! uid and mode bits), safe opens of its entries (`O_NOFOLLOW | O_NONBLOCK`), file
//! identity (device, inode), `flock` locks. Watching files is per OS (`linux/fs.rs`,
//! `macos/fs.rs`). See `docs/DESIGN.md`, sections "Records and locks", "Platform seam".

use std::fs::{self, DirBuilder, File, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Waitable, effective_uid};
use crate::sys::os::FileWatch;

/// `$XDG_RUNTIME_DIR/ocwrap`, else `$TMPDIR/ocwrap-<uid>`, else
/// `/tmp/ocwrap-<uid>`. Only absolute values count: the XDG spec calls a relative
/// `XDG_RUNTIME_DIR` invalid, and an empty or relative `TMPDIR` would give every
/// working directory a state dir of its own, where one session could not find the
/// server another one shares.
pub fn default_state_dir() -> PathBuf {
    let absolute = |key: &str| {
        std::env::var_os(key)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    match absolute("XDG_RUNTIME_DIR") {
        Some(runtime) => runtime.join("ocwrap"),
        None => absolute("TMPDIR")
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join(format!("ocwrap-{}", effective_uid())),
    }
}

/// Makes a directory that only its owner may use (`0700`).
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().mode(0o700).create(path)
}

/// Why an existing state dir cannot be trusted, if it cannot: another user owns
/// it, or others may write to it (either would let them plant records, locks or
/// sockets that ocwrap then acts on).
pub fn private_dir_problem(_path: &Path, meta: &fs::Metadata) -> Option<&'static str> {
    if meta.uid() != effective_uid() {
        Some("is owned by another user")
    } else if meta.mode() & 0o022 != 0 {
        Some("is group- or world-writable")
    } else {
        None
    }
}

/// Flags for opening state-dir entries: never through a planted symlink
/// (`O_NOFOLLOW`, which fails with `ELOOP` on Linux and macOS alike), and never blocking in `open` itself (`O_NONBLOCK`: a FIFO planted
/// under a record's or a lock's name would otherwise block until a writer comes).
/// Callers check that what they opened is a regular file before reading it.
const STATE_ENTRY_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK;

/// Options for opening a state-dir entry with [`STATE_ENTRY_FLAGS`], created `0600`.
pub fn state_entry_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.custom_flags(STATE_ENTRY_FLAGS).mode(0o600);
    options
}

/// Whether a call failed for want of resources (descriptors, memory) rather than
/// because of what it looked at: such a failure proves nothing about a file or a
/// process, and must not be taken for "gone" or "free".
pub fn is_resource_shortage(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS | libc::EAGAIN | libc::EINTR
        )
    )
}

/// Whether an `open` failed because the last component was a symlink and
/// `O_NOFOLLOW` refused it.
pub fn is_symlink_refusal(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::ELOOP)
}

/// Which file a path named when it was looked at: (device, inode). A file replaced
/// under the same name has another identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    pub fn of(meta: &fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// What `path` names now, without following a symlink; `None` if nothing.
    pub fn at(path: &Path) -> Option<FileId> {
        fs::symlink_metadata(path).ok().map(|m| FileId::of(&m))
    }
}

impl FileId {
    /// The identity of an open file.
    pub fn of_file(file: &File) -> io::Result<FileId> {
        Ok(FileId::of(&file.metadata()?))
    }
}

/// What kind of file `meta` describes, in words ("a FIFO", "a directory", …).
pub fn file_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    match () {
        _ if t.is_file() => "a regular file",
        _ if t.is_dir() => "a directory",
        _ if t.is_symlink() => "a symlink",
        _ if t.is_fifo() => "a FIFO",
        _ if t.is_socket() => "a socket",
        _ if t.is_block_device() || t.is_char_device() => "a device",
        _ => "an unknown kind of file",
    }
}

/// Takes the exclusive lock (`flock`) on `file`, waiting for it.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    file.lock()
}

/// Takes the exclusive lock on `file` if nobody holds it; `false` when someone does.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    lock_outcome(file.try_lock())
}

/// Takes a shared lock on `file`, waiting while someone holds it exclusively.
pub fn lock_shared(file: &File) -> io::Result<()> {
    file.lock_shared()
}

/// Takes a shared lock on `file` unless someone holds it exclusively (`false`).
pub fn try_lock_shared(file: &File) -> io::Result<bool> {
    lock_outcome(file.try_lock_shared())
}

fn lock_outcome(result: Result<(), TryLockError>) -> io::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

impl FileWatch {
    /// The descriptors to wait on for every watched file: the inotify (or kqueue)
    /// descriptor.
    pub fn waitables(&self) -> Vec<Waitable<'_>> {
        vec![self.fd()]
    }
}
