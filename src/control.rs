//! The control socket `<stem>.sock`: how `up`, `release`, `status` and `stop` talk
//! to a running supervisor (docs/DESIGN.md, "Control protocol").
//!
//! One request per connection: a JSON object on one line (`{"op":"attach",
//! "owners":[{"pid":123,"start":456}],"client":789}`, `{"op":"release",
//! "owner":{"pid":123,"start":456},"client":789}` or `{"op":"release"}` for all,
//! `{"op":"status"}`, `{"op":"stop"}`), answered by one line (`{"ok":true,
//! "record":{…}}` or `{"ok":false,"kind":"…","error":"…"}`). The socket lives in
//! the `0700` state dir; a peer of another user is refused all the same
//! (`SO_PEERCRED`), and a message over 64 KiB is refused.
//!
//! The supervisor's side never blocks: every connection is a non-blocking member
//! of the event loop's poll set ([`Clients`]), read and written only as far as the
//! kernel allows at that moment, with one deadline for the whole exchange counted
//! from `accept`. A client that sends nothing, or a byte at a time, costs the loop
//! a few system calls per wake and is dropped at its deadline; past
//! [`client_limit`] connections, newcomers get a `busy` refusal at once. Should
//! the process run out of descriptors all the same, the listener's reserve
//! descriptor takes the pending connection, which is refused `busy` and closed:
//! the backlog drains and the loop never spins on a listener it cannot accept
//! from.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::owner::Owner;
use crate::process::{Pid, StartTime};
use crate::record::{self, Record};
use crate::sys::{self, ControlListener, ControlStream, FileId, Interest, Waitable};

/// Longest request accepted, newline included.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// How long one connection may take, from `accept` to the last byte of the reply.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// Connections served at once, including those whose reply waits for readiness;
/// more are refused with [`Refusal::Busy`]. Fewer where the descriptor limit is
/// low: see [`client_limit`].
pub const MAX_CLIENTS: usize = 256;

/// Descriptors kept for the supervisor's own work (its files, its looks at
/// processes, the handles on the tree it tears down), out of reach of control
/// clients: clients that used them up would make every look at an owner or a
/// member fail.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// How many connections may be open at once under this process's descriptor
/// limit: [`MAX_CLIENTS`], or what the limit leaves past
/// [`RESERVED_DESCRIPTORS`], but at least one, so `stop` can always get through.
pub fn client_limit() -> usize {
    match sys::descriptor_limit() {
        Some(limit) => usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS))
            .unwrap_or(MAX_CLIENTS)
            .clamp(1, MAX_CLIENTS),
        None => MAX_CLIENTS,
    }
}

/// How long a client waits for the supervisor to read its request or to answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Adds leases for these owners, each named by its identity (PID and start
    /// time, as the client saw it); answered once the server is ready. `client` is
    /// the client's own PID as it sees itself: it must be the PID the kernel gives
    /// for the peer, or the client is in another PID namespace and its PIDs would
    /// be misread here.
    Attach {
        owners: Vec<Owner>,
        client: Pid,
    },
    /// Drops the lease of `owner`, or every lease when it is absent. With an
    /// owner, `client` is required, as for `attach`.
    Release {
        #[serde(default)]
        owner: Option<OwnerRef>,
        #[serde(default)]
        client: Option<Pid>,
    },
    /// The record; with `wait_ready`, answered once the server is ready.
    Status {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        wait_ready: bool,
    },
    Stop,
}

/// An owner a `release` names: its PID, and its start time when the client could
/// see it run (an owner the client saw gone is released by PID: its lease is
/// over either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerRef {
    pub pid: Pid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartTime>,
}

impl OwnerRef {
    /// `pid` as this process sees it now.
    pub fn observe(pid: Pid) -> OwnerRef {
        OwnerRef {
            pid,
            start: Owner::observe(pid).map(|o| o.start),
        }
    }
}

/// Why a request was refused: what a client branches on (the `error` text is for
/// people).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The server is being torn down; start a new one once this one is gone.
    Stopping,
    /// `release` of a PID that holds no lease.
    NotOwner,
    /// `attach` of a PID that is not running, or that now belongs to another
    /// process than the one the client named (another start time).
    OwnerNotRunning,
    /// `attach` of a process of the server's own tree: the server could never go.
    OwnerInTree,
    /// A request naming PIDs from a client in another PID namespace, whose PIDs
    /// cannot be read here.
    ForeignNamespace,
    /// `attach` of a PID that can never exit (init, a kernel thread, the supervisor).
    ImmortalOwner,
    /// `attach` with an empty owner list.
    NoOwners,
    /// More leases than a supervisor keeps.
    TooManyOwners,
    /// Not one JSON request on one line.
    BadRequest,
    /// Over [`MAX_MESSAGE`].
    TooLarge,
    /// The request was not complete within [`REQUEST_DEADLINE`].
    Timeout,
    /// Too many connections at once; try again.
    Busy,
    /// The peer runs as another user.
    ForeignPeer,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Refusal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
}

impl Reply {
    pub fn ok(record: Record) -> Reply {
        Reply {
            ok: true,
            kind: None,
            error: None,
            record: Some(record),
        }
    }

    pub fn refused(kind: Refusal, message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            kind: Some(kind),
            error: Some(message.into()),
            record: None,
        }
    }

    fn line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        line.push(b'\n');
        line
    }
}

/// The supervisor's listening socket (on Windows, a named pipe whose name the file
/// at the socket's path holds: see `sys::ControlListener`).
#[derive(Debug)]
pub struct ControlSocket {
    listener: ControlListener,
    path: PathBuf,
    id: FileId,
}

impl ControlSocket {
    /// Binds `path`, replacing whatever a dead supervisor of the same name left
    /// there (the caller holds the name's lock, so no live one can own it).
    pub fn bind(path: &Path) -> io::Result<ControlSocket> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = ControlListener::bind(path)?;
        let id = FileId::at(path).ok_or_else(|| io::Error::other("socket vanished after bind"))?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            id,
        })
    }

    /// Ready when a connection is pending.
    pub fn waitable(&self) -> Waitable<'_> {
        self.listener.waitable()
    }

    /// Whether the socket's path still names the socket we bound.
    pub fn is_in_place(&self) -> bool {
        FileId::at(&self.path) == Some(self.id)
    }

    /// Which file the socket is.
    pub fn id(&self) -> FileId {
        self.id
    }
}

/// Which connection a request came in on, to answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientId(u64);

/// The open control connections of a supervisor.
#[derive(Debug)]
pub struct Clients {
    open: Vec<Client>,
    next: u64,
    /// [`client_limit`], read once.
    limit: usize,
}

impl Default for Clients {
    fn default() -> Clients {
        Clients {
            open: Vec::new(),
            next: 0,
            limit: client_limit(),
        }
    }
}

#[derive(Debug)]
struct Client {
    id: ClientId,
    stream: ControlStream,
    /// The peer's PID in our namespace, as the kernel recorded it at connect
    /// (`None`: outside our namespace, or unknown).
    peer: Option<Pid>,
    deadline: Instant,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    /// Collecting the request line.
    Reading(Vec<u8>),
    /// The request went to the supervisor; its reply is awaited (perhaps until the
    /// server is ready). Watched only for the client going away.
    Handling,
    /// Sending the reply; `sent` bytes of `line` are out.
    Writing { line: Vec<u8>, sent: usize },
    /// Done: dropped at the next service.
    Closed,
}

impl Clients {
    /// What to wait on: readable while reading, writable while writing.
    pub fn waitables(&self) -> impl Iterator<Item = (Waitable<'_>, Interest)> {
        self.open.iter().filter_map(|c| {
            let interest = match c.phase {
                Phase::Reading(_) | Phase::Handling => Interest::Read,
                Phase::Writing { .. } => Interest::Write,
                Phase::Closed => return None,
            };
            Some((c.stream.waitable(interest), interest))
        })
    }

    /// The earliest connection deadline, for the loop's timeout. A request whose
    /// reply waits for readiness has none: it is answered when the server is
    /// ready or teardown begins, and dropped if the client goes away first.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open
            .iter()
            .filter(|c| !matches!(c.phase, Phase::Handling))
            .map(|c| c.deadline)
            .min()
    }

    /// Accepts every pending connection, reads and writes what can be read and
    /// written now, drops connections past their deadline, and returns the
    /// requests that are complete. Never blocks.
    pub fn service(
        &mut self,
        socket: &mut ControlSocket,
        now: Instant,
    ) -> Vec<(ClientId, Request)> {
        let mut complete = self.progress(0, now);
        // Newcomers last: the count that decides `busy` must not include clients
        // that have gone since the last wake.
        let known = self.open.len();
        self.accept(socket, now);
        complete.extend(self.progress(known, now));
        complete
    }

    /// Reads and writes what can be read and written now on the connections from
    /// index `from` on, drops the ones past their deadline, and returns the
    /// requests now complete.
    fn progress(&mut self, from: usize, now: Instant) -> Vec<(ClientId, Request)> {
        let mut complete = Vec::new();
        for client in &mut self.open[from..] {
            if now >= client.deadline && !matches!(client.phase, Phase::Handling) {
                client.expire();
                continue;
            }
            match &mut client.phase {
                Phase::Reading(buffer) => {
                    if let Some(outcome) = read_some(&mut client.stream, buffer) {
                        match outcome {
                            Ok(request) => {
                                client.phase = Phase::Handling;
                                complete.push((client.id, request));
                            }
                            Err(reply) => client.answer(&reply),
                        }
                    }
                }
                Phase::Writing { .. } => client.flush(),
                Phase::Handling if has_gone(&mut client.stream) => client.phase = Phase::Closed,
                Phase::Handling | Phase::Closed => {}
            }
        }
        self.open.retain(|c| !matches!(c.phase, Phase::Closed));
        complete
    }

    /// The PID of the process at the other end of `id`, in our namespace.
    pub fn peer(&self, id: ClientId) -> Option<Pid> {
        self.open.iter().find(|c| c.id == id).and_then(|c| c.peer)
    }

    /// Answers the request that came in on `id`.
    pub fn reply(&mut self, id: ClientId, reply: &Reply) {
        if let Some(client) = self.open.iter_mut().find(|c| c.id == id) {
            client.answer(reply);
        }
        self.open.retain(|c| !matches!(c.phase, Phase::Closed));
    }

    fn accept(&mut self, socket: &mut ControlSocket, now: Instant) {
        while let Some(accepted) = socket.listener.accept() {
            let Ok(stream) = accepted else {
                continue;
            };
            let peer = stream.peer_pid().ok().flatten();
            let mut client = Client {
                id: ClientId(self.next),
                stream,
                peer,
                deadline: now + REQUEST_DEADLINE,
                phase: Phase::Reading(Vec::new()),
            };
            self.next += 1;
            let refusal = if socket.listener.took_reserve() {
                Some(Reply::refused(
                    Refusal::Busy,
                    "busy: out of file descriptors; try again".to_string(),
                ))
            } else {
                refusal_at_accept(&client.stream, self.open.len(), self.limit)
            };
            if let Some(refusal) = refusal {
                // Answered at once into an empty socket buffer, then dropped.
                client.answer(&refusal);
                continue;
            }
            self.open.push(client);
        }
    }
}

impl Client {
    fn answer(&mut self, reply: &Reply) {
        self.phase = Phase::Writing {
            line: reply.line(),
            sent: 0,
        };
        self.flush();
    }

    fn flush(&mut self) {
        let Phase::Writing { line, sent } = &mut self.phase else {
            return;
        };
        while *sent < line.len() {
            match self.stream.write(&line[*sent..]) {
                Ok(0) => break,
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.phase = Phase::Closed;
    }

    fn expire(&mut self) {
        if let Phase::Reading(_) = self.phase {
            let reply = Reply::refused(
                Refusal::Timeout,
                format!("request not complete within {REQUEST_DEADLINE:?}"),
            );
            // Best effort: whatever fits in the socket buffer now.
            let _ = self.stream.write(&reply.line());
        }
        self.phase = Phase::Closed;
    }
}

/// Whether a client whose reply is pending has closed its end (what it sends
/// meanwhile is read and dropped).
fn has_gone(stream: &mut ControlStream) -> bool {
    let mut chunk = [0u8; 512];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return e.kind() != io::ErrorKind::WouldBlock,
        }
    }
}

fn refusal_at_accept(stream: &ControlStream, open: usize, limit: usize) -> Option<Reply> {
    match stream.peer_user() {
        Ok(uid) if uid == sys::current_user() => {}
        Ok(uid) => {
            return Some(Reply::refused(
                Refusal::ForeignPeer,
                format!("refused: peer uid {uid} is not this supervisor's user"),
            ));
        }
        Err(e) => {
            return Some(Reply::refused(
                Refusal::ForeignPeer,
                format!("refused: cannot identify the peer: {e}"),
            ));
        }
    }
    (open >= limit).then(|| {
        Reply::refused(
            Refusal::Busy,
            format!("busy: {limit} control connections are open; try again"),
        )
    })
}

/// Reads what the peer has sent so far. `None`: the request is not complete yet;
/// `Some(Ok)`: a request; `Some(Err)`: the reply that refuses it.
fn read_some(stream: &mut ControlStream, buffer: &mut Vec<u8>) -> Option<Result<Request, Reply>> {
    let mut chunk = [0u8; 4096];
    let ended = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => {
                buffer.extend_from_slice(&chunk[..n]);
                if buffer.contains(&b'\n') || buffer.len() > MAX_MESSAGE {
                    break false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break true,
        }
    };
    let line_end = buffer.iter().position(|&b| b == b'\n');
    let line = match line_end {
        Some(end) if end < MAX_MESSAGE => &buffer[..end],
        _ if buffer.len() >= MAX_MESSAGE => {
            return Some(Err(Reply::refused(
                Refusal::TooLarge,
                format!("message over {} KiB refused", MAX_MESSAGE / 1024),
            )));
        }
        // A request without a newline counts once the peer has finished sending.
        None if ended => buffer.as_slice(),
        _ => return None,
    };
    Some(
        serde_json::from_slice(line)
            .map_err(|e| Reply::refused(Refusal::BadRequest, format!("bad request: {e}"))),
    )
}

/// Sends one request to the supervisor behind `path` and returns its reply.
pub fn request(path: &Path, request: &Request) -> io::Result<Reply> {
    request_until(path, request, Instant::now() + IO_TIMEOUT)
}

/// Like [`request`], waiting for the reply until `deadline` (a reply held until the
/// server is ready can take as long as the server takes). A `busy` supervisor is
/// asked again after [`BUSY_PAUSE`] until the deadline.
pub fn request_until(path: &Path, request: &Request, deadline: Instant) -> io::Result<Reply> {
    loop {
        let reply = request_once(path, request, deadline)?;
        if reply.kind != Some(Refusal::Busy) || Instant::now() + BUSY_PAUSE >= deadline {
            return Ok(reply);
        }
        std::thread::sleep(BUSY_PAUSE);
    }
}

/// How soon a client asks again a supervisor that answered `busy`: there is no
/// event that says a connection slot came free.
const BUSY_PAUSE: Duration = Duration::from_millis(10);

fn request_once(path: &Path, request: &Request, deadline: Instant) -> io::Result<Reply> {
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
    line.push(b'\n');
    let answer = sys::control_request(
        path,
        &line,
        wait,
        IO_TIMEOUT,
        record::MAX_RECORD + MAX_MESSAGE as u64,
    )?;
    serde_json::from_slice(&answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_documented_wire_form() {
        let attach: Request = serde_json::from_str(
            r#"{"op":"attach","owners":[{"pid":12,"start":7},{"pid":13,"start":8}],"client":5}"#,
        )
        .unwrap();
        let owner = |pid, start| Owner {
            pid: Pid::new(pid).unwrap(),
            start: StartTime(start),
        };
        assert_eq!(
            attach,
            Request::Attach {
                owners: vec![owner(12, 7), owner(13, 8)],
                client: Pid::new(5).unwrap(),
            }
        );
        let all: Request = serde_json::from_str(r#"{"op":"release"}"#).unwrap();
        assert_eq!(
            all,
            Request::Release {
                owner: None,
                client: None
            }
        );
        let one: Request =
            serde_json::from_str(r#"{"op":"release","owner":{"pid":12},"client":5}"#).unwrap();
        assert_eq!(
            one,
            Request::Release {
                owner: Some(OwnerRef {
                    pid: Pid::new(12).unwrap(),
                    start: None
                }),
                client: Pid::new(5),
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"explode"}"#).is_err());
        // Bare PIDs are not identities; neither is a PID of 0.
        for bad in [
            r#"{"op":"attach","owners":[12],"client":5}"#,
            r#"{"op":"attach","owners":[{"pid":0,"start":1}],"client":5}"#,
            r#"{"op":"attach","owners":[{"pid":12,"start":1}]}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&Request::Stop).unwrap(),
            r#"{"op":"stop"}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Status { wait_ready: false }).unwrap(),
            r#"{"op":"status"}"#
        );
        let waiting: Request =
            serde_json::from_str(r#"{"op":"status","wait_ready":true}"#).unwrap();
        assert_eq!(waiting, Request::Status { wait_ready: true });
    }

    #[test]
    fn refusals_carry_a_kind() {
        let line = Reply::refused(Refusal::Stopping, "stopping").line();
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"ok\":false,\"kind\":\"stopping\",\"error\":\"stopping\"}\n"
        );
    }

    /// A pair of connected ends: the supervisor's and a client's.
    fn pair() -> (ControlStream, ControlStream) {
        ControlStream::pair().unwrap()
    }

    fn send(stream: &mut ControlStream, data: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        stream.write_all_until(data, deadline).unwrap();
    }

    /// Reads until the request is complete (or refused, with that kind), as the
    /// loop would.
    fn read_all(
        ours: &mut ControlStream,
        buffer: &mut Vec<u8>,
    ) -> Result<Request, Option<Refusal>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(outcome) = read_some(ours, buffer) {
                return outcome.map_err(|reply| reply.kind);
            }
            assert!(Instant::now() < deadline, "no complete request within 10 s");
            sys::poll_readable(
                &[ours.waitable(Interest::Read)],
                Some(Duration::from_millis(100)),
            )
            .unwrap();
        }
    }

    #[test]
    fn a_request_is_complete_at_its_newline_or_at_end_of_file() {
        let (mut ours, mut theirs) = pair();
        let mut buffer = Vec::new();
        send(&mut theirs, b"{\"op\":\"st");
        assert!(
            read_some(&mut ours, &mut buffer).is_none(),
            "half a request"
        );
        send(&mut theirs, b"atus\"}\n");
        assert_eq!(
            read_all(&mut ours, &mut buffer),
            Ok(Request::Status { wait_ready: false })
        );

        let (mut ours, mut theirs) = pair();
        send(&mut theirs, b"{\"op\":\"stop\"}");
        drop(theirs);
        assert_eq!(read_all(&mut ours, &mut Vec::new()), Ok(Request::Stop));
    }

    #[test]
    fn an_oversize_or_malformed_request_is_refused_with_its_kind() {
        let (mut ours, mut theirs) = pair();
        let writer = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let _ = theirs.write_all_until(&vec![b' '; MAX_MESSAGE + 10], deadline);
            theirs
        });
        let outcome = read_all(&mut ours, &mut Vec::new());
        assert_eq!(outcome, Err(Some(Refusal::TooLarge)));
        drop(ours);
        let _ = writer.join();

        let (mut ours, mut theirs) = pair();
        send(&mut theirs, b"{ not json\n");
        let outcome = read_all(&mut ours, &mut Vec::new());
        assert_eq!(outcome, Err(Some(Refusal::BadRequest)));
    }
}
