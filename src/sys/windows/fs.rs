//! The state dir: where it is by default, a private one and whether an existing
//! one can be trusted, opening its entries safely, file identity, the name locks
//! (`LockFileEx`) and watching for removal (change notifications). See
//! `docs/DESIGN.md`, section "Platform seam".

use std::fs::{self, File};
use std::io;
use std::mem::zeroed;
use std::os::windows::fs::{FileTypeExt, OpenOptionsExt};
use std::os::windows::io::{BorrowedHandle, RawHandle};
use std::path::{Path, PathBuf};

use windows_sys::Win32::Foundation::{
    ERROR_LOCK_VIOLATION, ERROR_NO_SYSTEM_RESOURCES, ERROR_NOT_ENOUGH_MEMORY, ERROR_OUTOFMEMORY,
    ERROR_TOO_MANY_OPEN_FILES, HANDLE, WAIT_OBJECT_0,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, CreateDirectoryW, CreateFileW, FILE_FLAG_BACKUP_SEMANTICS,
    FILE_FLAG_OPEN_REPARSE_POINT, FILE_NOTIFY_CHANGE, FILE_NOTIFY_CHANGE_DIR_NAME,
    FILE_NOTIFY_CHANGE_FILE_NAME, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
    FindCloseChangeNotification, FindFirstChangeNotificationW, FindNextChangeNotification,
    GetFileInformationByHandle, LOCK_FILE_FLAGS, LOCKFILE_EXCLUSIVE_LOCK,
    LOCKFILE_FAIL_IMMEDIATELY, LockFileEx, OPEN_EXISTING,
};
use windows_sys::Win32::System::IO::OVERLAPPED;
use windows_sys::Win32::System::Threading::WaitForSingleObject;

use super::security::{PrivateSecurity, UserSid, current_user, file_owner};
use super::wait::Waitable;
use super::{check, owned_or_invalid, raw, wide};

/// Where records, locks and logs live by default: `%LOCALAPPDATA%\ocwrap`, which is
/// per user (the temp dir is not private on every Windows set-up), else
/// `ocwrap` in the temp dir.
/// Only an absolute `LOCALAPPDATA` counts: a relative one would give every working
/// directory a state dir of its own.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("LOCALAPPDATA")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(std::env::temp_dir)
        .join("ocwrap")
}

/// Creates a directory that only the current user can use (files made in it
/// inherit that).
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let security = PrivateSecurity::new(&UserSid::current()?, true)?;
    let attributes = security.attributes();
    let path = wide(path);
    // SAFETY: a NUL-terminated path and attributes whose descriptor lives for the call.
    check(unsafe { CreateDirectoryW(path.as_ptr(), &attributes) })
}

/// Why an existing state dir cannot be trusted, if it cannot: another user owns
/// it (or its owner cannot be read). Its access list is not examined: a dir ocwrap
/// made admits only its user (see [`create_private_dir`]); one made otherwise by
/// the same user is trusted as the user's own.
pub fn private_dir_problem(path: &Path, _meta: &fs::Metadata) -> Option<&'static str> {
    match file_owner(path) {
        Ok(owner) if owner == current_user() => None,
        Ok(_) => Some("is owned by another user"),
        Err(_) => Some("has an owner that cannot be read"),
    }
}

/// Where the lock byte is. Windows byte-range locks are mandatory: a reader of a
/// locked range fails. The claim written at the start of a lock file must stay
/// readable by everyone while the lock is held, so the lock is taken on one byte
/// far beyond anything ever written there (a lock may lie past the end of a file).
const LOCK_AT: u64 = 1 << 62;

fn lock_byte(file: &File, flags: LOCK_FILE_FLAGS) -> io::Result<bool> {
    // SAFETY: plain data; all-zero is a valid value before the offset is set.
    let mut at: OVERLAPPED = unsafe { zeroed() };
    at.Anonymous.Anonymous.Offset = LOCK_AT as u32;
    at.Anonymous.Anonymous.OffsetHigh = (LOCK_AT >> 32) as u32;
    // SAFETY: a valid file handle opened for synchronous I/O (the call completes,
    // or fails, before it returns) and an OVERLAPPED that lives for the call.
    let ok = unsafe { LockFileEx(raw(file), flags, 0, 1, 0, &mut at) };
    if ok != 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if flags & LOCKFILE_FAIL_IMMEDIATELY != 0
        && error.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32)
    {
        return Ok(false);
    }
    Err(error)
}

/// Takes the exclusive lock on `file`, waiting for it. Released when the file is
/// closed (Wine's `UnlockFileEx` reports an error although it releases).
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    lock_byte(file, LOCKFILE_EXCLUSIVE_LOCK).map(|_| ())
}

/// Takes the exclusive lock on `file` if nobody holds it; `false` when someone does.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    lock_byte(file, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY)
}

/// Takes a shared lock on `file`, waiting while someone holds it exclusively.
pub fn lock_shared(file: &File) -> io::Result<()> {
    lock_byte(file, 0).map(|_| ())
}

/// Takes a shared lock on `file` unless someone holds it exclusively (`false`).
pub fn try_lock_shared(file: &File) -> io::Result<bool> {
    lock_byte(file, LOCKFILE_FAIL_IMMEDIATELY)
}

/// Open a state-dir entry itself, never what it points to: a symlink or junction
/// planted under a record's or a lock's name is opened as the link, and the
/// caller's regular-file check refuses it. Opening a file never blocks on Windows.
const STATE_ENTRY_FLAGS: u32 = FILE_FLAG_OPEN_REPARSE_POINT;

/// Options for opening a state-dir entry (see [`STATE_ENTRY_FLAGS`]). Access is
/// limited by the state dir's inherited descriptor, not by a mode.
pub fn state_entry_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.custom_flags(STATE_ENTRY_FLAGS);
    options
}

/// Whether a call failed for want of resources (handles, memory) rather than
/// because of what it looked at (see the Unix seam).
pub fn is_resource_shortage(error: &io::Error) -> bool {
    error.raw_os_error().is_some_and(|code| {
        matches!(
            code as u32,
            ERROR_TOO_MANY_OPEN_FILES
                | ERROR_NOT_ENOUGH_MEMORY
                | ERROR_OUTOFMEMORY
                | ERROR_NO_SYSTEM_RESOURCES
        )
    })
}

/// Always `false`: on Windows a link is opened, not refused, and the caller's
/// regular-file check refuses it (see [`STATE_ENTRY_FLAGS`]).
pub fn is_symlink_refusal(_error: &io::Error) -> bool {
    false
}

/// What kind of file `meta` describes, in words.
pub fn file_kind(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    match () {
        _ if t.is_symlink_dir() || t.is_symlink_file() || t.is_symlink() => "a symlink",
        _ if t.is_file() => "a regular file",
        _ if t.is_dir() => "a directory",
        _ => "an unknown kind of file",
    }
}

/// Which file a path named when it was looked at: (volume serial, file index). A
/// file replaced under the same name has another identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    volume: u32,
    index: u64,
}

impl FileId {
    /// The identity of an open file.
    pub fn of_file(file: &fs::File) -> io::Result<FileId> {
        // SAFETY: plain data; all-zero is a valid value to overwrite.
        let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { zeroed() };
        // SAFETY: a valid file handle and a structure that lives for the call.
        check(unsafe { GetFileInformationByHandle(raw(file), &mut info) })?;
        Ok(FileId {
            volume: info.dwVolumeSerialNumber,
            index: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
        })
    }

    /// What `path` names now, without following a link; `None` if nothing.
    pub fn at(path: &Path) -> Option<FileId> {
        let wide_path = wide(path);
        // SAFETY: a NUL-terminated path; no access rights are asked for (identity
        // only), every sharing mode is allowed so nobody is disturbed, and the
        // result is a new handle or INVALID_HANDLE_VALUE.
        let handle = unsafe {
            owned_or_invalid(CreateFileW(
                wide_path.as_ptr(),
                0,
                FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                std::ptr::null(),
                OPEN_EXISTING,
                FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
                std::ptr::null_mut(),
            ))
        }
        .ok()?;
        FileId::of_file(&fs::File::from(handle)).ok()
    }
}

/// Wakes the loop when a watched file or directory may have been removed, renamed
/// or replaced.
///
/// Windows cannot watch one file: a change notification covers a directory's
/// entries. So a watched file wakes us for any name change in its directory (other
/// supervisors' too), and a watched directory for any directory-name change in its
/// parent; the caller then compares [`FileId`]s, which is cheap. The notifications
/// hold their directories open, which lets them be deleted (sharing includes
/// delete) but keeps a deleted one "pending" until [`FileWatch::drain`] drops the
/// notification; re-registering after a wipe therefore drains first.
#[derive(Debug, Default)]
pub struct FileWatch {
    notifications: Vec<Notification>,
}

#[derive(Debug)]
struct Notification {
    dir: PathBuf,
    filter: FILE_NOTIFY_CHANGE,
    handle: RawHandle,
}

// SAFETY: a change-notification handle may be used and closed from any thread.
unsafe impl Send for Notification {}

impl Drop for Notification {
    fn drop(&mut self) {
        // SAFETY: a change-notification handle we own; closed once, here.
        unsafe { FindCloseChangeNotification(self.handle as HANDLE) };
    }
}

impl FileWatch {
    pub fn new() -> io::Result<FileWatch> {
        Ok(FileWatch::default())
    }

    /// Wakes the watcher when the directory `dir` itself is removed or renamed.
    pub fn watch_dir(&mut self, dir: &Path) -> io::Result<()> {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        self.add(parent, FILE_NOTIFY_CHANGE_DIR_NAME)
    }

    /// Wakes the watcher when the file at `path` is removed, renamed or replaced
    /// (and when any other name in its directory changes).
    pub fn watch_file(&mut self, path: &Path) -> io::Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        self.add(dir, FILE_NOTIFY_CHANGE_FILE_NAME)
    }

    fn add(&mut self, dir: &Path, filter: FILE_NOTIFY_CHANGE) -> io::Result<()> {
        if self
            .notifications
            .iter()
            .any(|n| n.dir == dir && n.filter == filter)
        {
            return Ok(());
        }
        let wide_dir = wide(dir);
        // SAFETY: a NUL-terminated path; returns a new handle or INVALID_HANDLE_VALUE.
        let handle = unsafe { FindFirstChangeNotificationW(wide_dir.as_ptr(), 0, filter) };
        if handle == windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE {
            return Err(io::Error::last_os_error());
        }
        self.notifications.push(Notification {
            dir: dir.to_path_buf(),
            filter,
            handle: handle as RawHandle,
        });
        Ok(())
    }

    /// The handles to wait on (each signalled after a change, until drained).
    pub fn waitables(&self) -> Vec<Waitable<'_>> {
        self.notifications
            .iter()
            .map(|n| {
                // SAFETY: the handle is open for as long as `self` keeps the
                // notification.
                unsafe { BorrowedHandle::borrow_raw(n.handle) }
            })
            .collect()
    }

    /// Re-arms every notification that fired; whether any had. A notification that
    /// cannot be re-armed (its directory is gone) is dropped.
    pub fn drain(&mut self) -> bool {
        let mut any = false;
        self.notifications.retain(|n| {
            // SAFETY: the handle is open while the notification is kept.
            let fired = unsafe { WaitForSingleObject(n.handle as HANDLE, 0) } == WAIT_OBJECT_0;
            if !fired {
                return true;
            }
            any = true;
            // SAFETY: a valid change-notification handle.
            unsafe { FindNextChangeNotification(n.handle as HANDLE) != 0 }
        });
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::windows::fixture::scratch;
    use std::io::{Read, Write};

    #[test]
    fn a_held_lock_leaves_the_claim_readable() {
        let dir = scratch("lock");
        let path = dir.join("x.lock");
        let open = || {
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        let mut holder = open();
        assert!(try_lock_exclusive(&holder).unwrap());
        holder.write_all(b"42 7\n").unwrap();
        let other = open();
        assert!(!try_lock_exclusive(&other).unwrap(), "held");
        assert!(!try_lock_shared(&other).unwrap(), "held");
        let mut claim = String::new();
        (&other).read_to_string(&mut claim).unwrap();
        assert_eq!(claim, "42 7\n");
        drop(holder);
        assert!(try_lock_exclusive(&other).unwrap(), "free once closed");
        drop(other);
        let _ = fs::remove_dir_all(&dir);
    }
}
