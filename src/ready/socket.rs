//! The local-socket readiness probe (`--socket PATH`): the server is ready once a
//! connect to its socket succeeds. A Unix-domain connect never waits (it succeeds
//! or is refused at once; a full backlog still means a listener), so each attempt
//! is one call made from the supervisor's loop, retried after a pause that grows
//! from 1 ms to [`tcp::MAX_PAUSE`](super::tcp::MAX_PAUSE), as the TCP probe's does.
//!
//! Only a socket of this user at the path itself counts: the path's last component
//! is never followed when it is a symlink, and a directory, FIFO, regular file or
//! another user's socket there is "in the way" (`up` says so before it starts
//! anything). A socket file nobody listens on (a dead server's) is refused by the
//! kernel, so it is neither ready nor `external`.

use std::io;
use std::time::{Duration, Instant};

use super::SocketPath;
use crate::diag;
use crate::sys;

/// What is at a socket path now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// A socket of ours, and a connect to it succeeded.
    Accepting,
    /// Nothing is there.
    Absent,
    /// A socket of ours that refused the connect (nobody listens: stale).
    Refused,
    /// Something that is not a socket of ours: what it is.
    InTheWay(String),
}

/// Looks at `path` once, connecting if a socket of ours is there.
pub fn look(path: &SocketPath) -> Look {
    match sys::socket_in_the_way(path.path()) {
        Ok(Some(what)) => return Look::InTheWay(what),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Look::Absent,
        Err(e) => return Look::InTheWay(format!("a path that cannot be looked at ({e})")),
        Ok(None) => {}
    }
    match sys::socket_connect(path.path()) {
        Ok(()) => Look::Accepting,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Look::Absent,
        Err(_) => Look::Refused,
    }
}

const FIRST_PAUSE: Duration = Duration::from_millis(1);

/// The supervisor's probe of a local socket.
#[derive(Debug)]
pub struct SocketProbe {
    path: SocketPath,
    next: Instant,
    pause: Duration,
    /// What was last said about the path (`-v`), so each change is said once.
    said: Option<Look>,
}

impl SocketProbe {
    pub fn new(path: SocketPath, now: Instant) -> SocketProbe {
        SocketProbe {
            path,
            next: now,
            pause: FIRST_PAUSE,
            said: None,
        }
    }

    /// When the next attempt is due.
    pub fn next_wake(&self) -> Instant {
        self.next
    }

    /// Makes an attempt if one is due; true once the socket accepts.
    pub fn advance(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        let seen = look(&self.path);
        if seen == Look::Accepting {
            return true;
        }
        if self.said.as_ref() != Some(&seen) {
            if let Look::InTheWay(what) = &seen {
                diag::note(format_args!(
                    "--socket {}: {what} is there, not a socket of ours; waiting for the server's socket",
                    self.path
                ));
            }
            self.said = Some(seen);
        }
        self.next = now + self.pause;
        self.pause = (self.pause * 2).min(super::tcp::MAX_PAUSE);
        false
    }
}
