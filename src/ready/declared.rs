//! Readiness the server declares itself (docs/DESIGN.md, "Readiness").
//!
//! - `--ready notify`, as systemd's `Type=notify`: the supervisor binds a datagram
//!   socket in the state dir (`<name>.notify`, in a directory only this user can
//!   enter), names it in the server's `NOTIFY_SOCKET`, and counts the server ready
//!   on a message with a `READY=1` line sent by a process of the server's tree
//!   (the kernel says who sent it). A message larger than [`MAX_MESSAGE`] is cut
//!   by the kernel and ignored whole; one from a process outside the tree is
//!   ignored; other lines (`STATUS=…`) are ignored. Once ready, the socket is
//!   closed and removed: later messages fail harmlessly for the sender.
//! - `--ready fd:N`, as s6's `notification-fd`: the server's descriptor N is the
//!   write end of a pipe whose read end the supervisor watches; the first newline
//!   makes it ready (what comes before it is ignored, and nothing is kept). A
//!   server that closes N without one never becomes ready: `up` fails at its
//!   deadline.
//!
//! Nothing here blocks: each [`Declared::advance`] reads what is there, at most
//! [`MAX_READS`] messages or chunks, so a flood cannot hold the loop.

use std::io;
use std::path::{Path, PathBuf};

use super::ReadyBy;
use crate::diag;
use crate::error::Error;
use crate::process::Pid;
use crate::sys::{self, NotifySocket, ReadyFd, Waitable};

/// The variable that names the notify socket, as systemd sets it.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The largest notify message read: systemd's own limit.
pub const MAX_MESSAGE: usize = 4096;
/// The most messages or chunks read in one go.
const MAX_READS: usize = 64;

/// A declared-readiness channel, made before the spawn.
#[derive(Debug)]
pub struct Declared {
    how: How,
    /// Closed (fd) or given up: nothing more to read.
    done: bool,
}

#[derive(Debug)]
enum How {
    Notify { socket: NotifySocket, path: PathBuf },
    Fd { pipe: ReadyFd, fd: u32 },
}

impl Declared {
    /// The channel `by` needs, or `None` for the forms the server does not declare.
    /// `notify_path` is where the notify socket goes (`<name>.notify` in the state
    /// dir); what is there already is replaced when it is a socket (the name's lock
    /// is ours, so no live supervisor uses it), else refused as in the way.
    pub fn prepare(by: &ReadyBy, notify_path: &Path) -> Result<Option<Declared>, Error> {
        let how = match by {
            ReadyBy::Notify => {
                if notify_path.as_os_str().len() > sys::MAX_SOCKET_PATH {
                    return Err(Error::SocketPathTooLong {
                        path: notify_path.to_path_buf(),
                        limit: sys::MAX_SOCKET_PATH,
                    });
                }
                clear_stale(notify_path)?;
                let socket = NotifySocket::bind(notify_path)
                    .map_err(Error::os("binding the notify socket"))?;
                How::Notify {
                    socket,
                    path: notify_path.to_path_buf(),
                }
            }
            ReadyBy::Fd(fd) => How::Fd {
                pipe: ReadyFd::new(*fd).map_err(Error::os("making the readiness pipe"))?,
                fd: *fd,
            },
            _ => return Ok(None),
        };
        Ok(Some(Declared { how, done: false }))
    }

    /// `NOTIFY_SOCKET`'s value for the server, with `--ready notify`.
    pub fn notify_socket(&self) -> Option<&Path> {
        match &self.how {
            How::Notify { path, .. } => Some(path),
            How::Fd { .. } => None,
        }
    }

    /// The pipe whose write end becomes the server's descriptor N.
    pub fn ready_fd(&self) -> Option<&ReadyFd> {
        match &self.how {
            How::Fd { pipe, .. } => Some(pipe),
            How::Notify { .. } => None,
        }
    }

    /// Once the server is spawned: our copy of the pipe's write end goes, so that
    /// the pipe ends when the server's tree closes it.
    pub fn spawned(&mut self) {
        if let How::Fd { pipe, .. } = &mut self.how {
            pipe.close_write_end();
        }
    }

    /// What to wait on: `None` once nothing more can come.
    pub fn waitable(&self) -> Option<Waitable<'_>> {
        if self.done {
            return None;
        }
        Some(match &self.how {
            How::Notify { socket, .. } => socket.waitable(),
            How::Fd { pipe, .. } => pipe.waitable(),
        })
    }

    /// Reads what is there; true once the server has declared itself ready.
    pub fn advance(&mut self, in_tree: impl Fn(Pid) -> bool) -> bool {
        if self.done {
            return false;
        }
        match &self.how {
            How::Notify { socket, .. } => {
                let (ready, failed) = read_notify(socket, in_tree);
                self.done = failed;
                ready
            }
            How::Fd { pipe, fd } => {
                let (ready, closed) = read_fd(pipe, *fd);
                self.done = closed;
                ready
            }
        }
    }
}

impl Drop for Declared {
    /// The notify socket goes with the watch: at readiness or teardown.
    fn drop(&mut self) {
        if let How::Notify { socket, path } = &self.how
            && sys::FileId::at(path) == socket.file_id()
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Removes a socket left at `path` by a supervisor that died; refuses anything else.
fn clear_stale(path: &Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::os("looking at the notify socket's path")(e)),
        Ok(meta) if sys::is_socket(&meta) => std::fs::remove_file(path)
            .map_err(Error::os("removing a dead supervisor's notify socket")),
        Ok(meta) => Err(Error::InTheWay {
            path: path.to_path_buf(),
            what: format!("{} where the notify socket belongs", sys::file_kind(&meta)),
        }),
    }
}

/// Reads the waiting notify messages: (ready, the socket failed).
fn read_notify(socket: &NotifySocket, in_tree: impl Fn(Pid) -> bool) -> (bool, bool) {
    let mut buffer = [0u8; MAX_MESSAGE];
    for _ in 0..MAX_READS {
        let message = match socket.receive(&mut buffer) {
            Ok(Some(message)) => message,
            Ok(None) => return (false, false),
            Err(e) => {
                diag::say(format_args!(
                    "the notify socket failed ({e}); the server cannot declare itself ready"
                ));
                return (false, true);
            }
        };
        if message.truncated {
            diag::note("a notify message larger than 4096 bytes: ignored");
            continue;
        }
        if !says_ready(&buffer[..message.len]) {
            continue;
        }
        match message.sender {
            Some(pid) if in_tree(pid) => return (true, false),
            Some(pid) => diag::note(format_args!(
                "READY=1 from pid {pid}, which is not in the server's tree: ignored"
            )),
            None => diag::note("READY=1 from an unknown sender: ignored"),
        }
    }
    (false, false)
}

/// Whether a notify message has a line that is exactly `READY=1`.
pub fn says_ready(message: &[u8]) -> bool {
    message
        .split(|&b| b == b'\n')
        .any(|line| line == b"READY=1")
}

/// Reads the readiness pipe: (a newline came, it is closed).
fn read_fd(pipe: &ReadyFd, fd: u32) -> (bool, bool) {
    let mut chunk = [0u8; 4096];
    for _ in 0..MAX_READS {
        match pipe.read(&mut chunk) {
            Ok(0) => {
                diag::say(format_args!(
                    "the server closed descriptor {fd} without writing a newline: it cannot become ready"
                ));
                return (false, true);
            }
            Ok(n) if chunk[..n].contains(&b'\n') => return (true, false),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (false, false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                diag::say(format_args!("reading descriptor {fd}'s pipe failed: {e}"));
                return (false, true);
            }
        }
    }
    (false, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_ready_line_counts() {
        assert!(says_ready(b"READY=1"));
        assert!(says_ready(b"STATUS=up\nREADY=1\n"));
        assert!(!says_ready(b"READY=0"));
        assert!(!says_ready(b"READY=10"));
        assert!(!says_ready(b"XREADY=1"));
        assert!(!says_ready(b""));
        assert!(!says_ready(b"READY=1\0"));
    }
}
