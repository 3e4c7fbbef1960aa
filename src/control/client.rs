//! The client's side of the control socket: one request, one reply, with
//! deadlines; and [`Peer`], the live supervisor of a name, which every command
//! asks through.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{IO_TIMEOUT, MAX_MESSAGE, Refusal, Reply, Request};
use crate::identity::Stem;
use crate::state::{StateDir, lock, record};
use crate::sys::ControlStream;

/// The supervisor of one name in a state dir, as a command sees it: whether it
/// lives (a live process holds the name's lock), what it answers, and when it is
/// gone. Every command that talks to a supervisor asks through one.
#[derive(Debug)]
pub struct Peer {
    lock: PathBuf,
    socket: PathBuf,
}

impl Peer {
    pub fn new(state: &StateDir, stem: &Stem) -> Peer {
        Peer {
            lock: state.lock_path(stem),
            socket: state.socket_path(stem),
        }
    }

    /// Whether a live supervisor holds the name. Looks without creating anything
    /// and never blocks.
    pub fn is_live(&self) -> bool {
        lock::is_held(&self.lock)
    }

    /// Sends `request` and waits for the reply until `deadline` (see
    /// [`request_until`]).
    pub fn ask(&self, request: &Request, deadline: Instant) -> Result<Reply, RequestError> {
        request_until(&self.socket, request, deadline)
    }

    /// Waits until the supervisor is gone (nobody holds the name's lock), or until
    /// `deadline`; true when it is.
    pub fn wait_gone(&self, deadline: Instant) -> bool {
        lock::wait_until_free(&self.lock, deadline)
    }
}

/// Why a client got no reply. What a command reports depends on one question:
/// will the supervisor still act on the request? Only when it went out whole and
/// no answer came ([`RequestError::Unanswered`]: a stopped supervisor reads it
/// when it runs again); never for the others.
#[derive(Debug)]
pub enum RequestError {
    /// No connection was made by the deadline: nothing was sent.
    Unreachable(io::Error),
    /// Connected, but the request did not go out whole: the supervisor drops it
    /// at its own deadline.
    NotSent(io::Error),
    /// The request went out whole and no answer came within `waited`.
    Unanswered { waited: Duration },
    /// The supervisor closed the connection without an answer (it was exiting).
    Closed,
    /// The answer is not a reply.
    BadReply(String),
}

impl RequestError {
    /// Whether the supervisor has the whole request and will still act on it.
    pub fn was_sent(&self) -> bool {
        matches!(self, RequestError::Unanswered { .. })
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Unreachable(e) => write!(f, "cannot reach the supervisor: {e}"),
            RequestError::NotSent(e) => write!(f, "the request could not be sent: {e}"),
            RequestError::Unanswered { waited } => write!(
                f,
                "the request was sent, but the supervisor did not answer within {} s (stopped?); it acts on it when it runs again",
                (waited.as_millis() + 500) / 1000
            ),
            RequestError::Closed => f.write_str(
                "the supervisor closed the connection without an answer (it was exiting)",
            ),
            RequestError::BadReply(e) => write!(f, "the supervisor's answer is not a reply: {e}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Sends one request to the supervisor behind `path` and returns its reply,
/// waiting for it at most [`IO_TIMEOUT`].
pub fn request(path: &Path, request: &Request) -> Result<Reply, RequestError> {
    request_until(path, request, Instant::now() + IO_TIMEOUT)
}

/// Like [`request`], waiting for the reply until `deadline` (a reply held until the
/// server is ready can take as long as the server takes). A `busy` supervisor, or
/// one whose backlog is full, is asked again after [`BUSY_PAUSE`] until the
/// deadline.
pub fn request_until(
    path: &Path,
    request: &Request,
    deadline: Instant,
) -> Result<Reply, RequestError> {
    loop {
        let again = Instant::now() + BUSY_PAUSE < deadline;
        match request_once(path, request, deadline) {
            Ok(reply) if reply.kind == Some(Refusal::Busy) && again => {}
            Err(RequestError::Unreachable(e)) if e.kind() == io::ErrorKind::WouldBlock && again => {
            }
            outcome => return outcome,
        }
        std::thread::sleep(BUSY_PAUSE);
    }
}

/// How soon a client asks again a supervisor that answered `busy`: there is no
/// event that says a connection slot came free.
const BUSY_PAUSE: Duration = Duration::from_millis(10);

fn request_once(path: &Path, request: &Request, deadline: Instant) -> Result<Reply, RequestError> {
    let started = Instant::now();
    let mut line =
        serde_json::to_vec(request).map_err(|e| RequestError::NotSent(io::Error::other(e)))?;
    line.push(b'\n');
    let stream = ControlStream::connect(path).map_err(RequestError::Unreachable)?;
    exchange(stream, &line, started, deadline)
}

/// Sends `line` on a connected `stream` and reads the reply until `deadline`.
pub(super) fn exchange(
    mut stream: ControlStream,
    line: &[u8],
    started: Instant,
    deadline: Instant,
) -> Result<Reply, RequestError> {
    let sent = stream.write_all_until(line, deadline.min(started + IO_TIMEOUT));
    // A supervisor that refuses a connection at once (busy) writes its refusal
    // and closes, perhaps before the request went out: the write then fails,
    // and the refusal is still there to read.
    if let Err(e) = &sent
        && !matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        )
    {
        return Err(RequestError::NotSent(sent.unwrap_err()));
    }
    let limit = usize::try_from(record::MAX_RECORD).unwrap_or(usize::MAX) + MAX_MESSAGE;
    let answer = match stream.read_line_until(limit, deadline) {
        Ok(answer) => answer,
        Err(e) if e.kind() == io::ErrorKind::TimedOut && sent.is_ok() => {
            return Err(RequestError::Unanswered {
                waited: started.elapsed(),
            });
        }
        Err(e) => {
            return Err(sent
                .err()
                .map_or(RequestError::BadReply(e.to_string()), RequestError::NotSent));
        }
    };
    if answer.is_empty() {
        return Err(sent
            .err()
            .map_or(RequestError::Closed, RequestError::NotSent));
    }
    serde_json::from_slice(&answer).map_err(|e| RequestError::BadReply(e.to_string()))
}
