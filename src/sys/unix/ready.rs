//! Declared readiness, on Unix: the pipe behind `--ready fd:N` (the notify socket
//! is per OS, `sys/linux/ready.rs`). See `docs/DESIGN.md`, sections "Readiness"
//! and "Platform seam".

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;

use super::Waitable;

/// `--ready fd:N` is built here.
pub const FD_READINESS: bool = true;

/// A pipe whose write end becomes the server's descriptor N and whose read end
/// (non-blocking, close-on-exec) the supervisor watches.
#[derive(Debug)]
pub struct ReadyFd {
    read: std::fs::File,
    write: Option<OwnedFd>,
    number: RawFd,
}

impl ReadyFd {
    /// The pipe for descriptor `number`. When `number` is free in this process,
    /// the write end is moved there (still close-on-exec), so that nothing else the
    /// spawn opens (std's own exec-error pipe) can be given that number and then
    /// be overwritten by the child's `dup2` ([`ChildEnd::pass_to`]).
    pub fn new(number: u32) -> io::Result<ReadyFd> {
        let number = RawFd::try_from(number).map_err(|_| io::ErrorKind::InvalidInput)?;
        let (read, write) = pipe()?;
        super::set_nonblocking(read.as_fd(), true)?;
        // SAFETY: F_GETFD only asks whether `number` is open.
        let free = unsafe { libc::fcntl(number, libc::F_GETFD) } == -1;
        let write = if free { move_to(write, number)? } else { write };
        Ok(ReadyFd {
            read: std::fs::File::from(read),
            write: Some(write),
            number,
        })
    }

    /// The write end as the child is to get it, while we hold it.
    pub(super) fn child_end(&self) -> Option<ChildEnd> {
        self.write.as_ref().map(|write| ChildEnd {
            raw: write.as_raw_fd(),
            number: self.number,
        })
    }

    /// Drops our copy of the write end (after the spawn).
    pub fn close_write_end(&mut self) {
        self.write = None;
    }

    /// Readable when bytes or the end of the pipe are there.
    pub fn waitable(&self) -> Waitable<'_> {
        self.read.as_fd()
    }

    /// Reads what is there: `Ok(0)` once every write end is closed,
    /// `WouldBlock` when nothing is there yet.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.read).read(buf)
    }
}

/// The write end's number here and the number the child is to have it under.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChildEnd {
    raw: RawFd,
    number: RawFd,
}

impl ChildEnd {
    /// Arranges for the write end to be the spawned command's descriptor N. Must
    /// be the last step before exec, after every other step has used its own
    /// descriptors; the write end must stay open until the spawn returns.
    pub(super) fn pass_to(self, command: &mut Command) {
        super::pass_as(command, self.raw, self.number);
    }
}

/// A pipe, both ends close-on-exec.
#[cfg(target_os = "linux")]
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`, which lives for the call.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned these descriptors to us; nobody else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A pipe, both ends close-on-exec (macOS has no `pipe2`: set right after, as std
/// does; the supervisor spawns from its one thread, so no exec comes between).
#[cfg(target_os = "macos")]
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe writes two descriptors into `fds`, which lives for the call.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned these descriptors to us; nobody else owns them.
    let ends = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&ends.0, &ends.1] {
        // SAFETY: F_SETFD on a descriptor we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(ends)
}

/// `fd` moved to descriptor `number` (free), close-on-exec.
fn move_to(fd: OwnedFd, number: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: dup2 onto a number that is free in this process; the new descriptor
    // is owned by nobody else.
    let moved = unsafe { libc::dup2(fd.as_raw_fd(), number) };
    if moved == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor dup2 just made is ours alone.
    let moved = unsafe { OwnedFd::from_raw_fd(moved) };
    // SAFETY: F_SETFD on a descriptor we own.
    if unsafe { libc::fcntl(moved.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(moved)
}
