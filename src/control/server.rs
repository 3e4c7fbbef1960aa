//! The supervisor's side of the control socket: the listener and every
//! connection as a non-blocking member of the event loop's poll set.
//!
//! The supervisor's side never blocks: every connection is a non-blocking member
//! of the event loop's poll set ([`Clients`]), read and written only as far as the
//! kernel allows at that moment, with one deadline for the whole exchange counted
//! from `accept`. A client that sends nothing, or a byte at a time, costs the loop
//! a few system calls per wake and is dropped at its deadline; past
//! [`client_limit`](super::client_limit) connections, newcomers get a `busy` refusal at once. Should
//! the process run out of descriptors all the same, the listener's reserve
//! descriptor takes the pending connection, which is refused `busy` and closed:
//! the backlog drains and the loop never spins on a listener it cannot accept
//! from.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::*;
use crate::sys::{self, ControlListener, ControlStream, FileId, Interest, Waitable};

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

/// Which connection a request came in on, to answer it. Numbered in the order
/// the connections were accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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
    /// Accepted past the connection limit (or on the reserve descriptor) because
    /// its request was complete: answered at once, never held.
    past_limit: bool,
}

#[derive(Debug)]
enum Phase {
    /// Collecting the request line.
    Reading(Vec<u8>),
    /// The request went to the supervisor; its reply is awaited (perhaps until the
    /// server is ready). Watched only for the client going away.
    Handling,
    /// Its reply waits until the server is ready, at most `until`; one of a
    /// bounded share of the connections ([`Clients::hold`]).
    Held { until: Instant },
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
                Phase::Reading(_) | Phase::Handling | Phase::Held { .. } => Interest::Read,
                Phase::Writing { .. } => Interest::Write,
                Phase::Closed => return None,
            };
            Some((c.stream.waitable(interest), interest))
        })
    }

    /// The earliest connection deadline, for the loop's timeout. A reply held
    /// until readiness has its own (the client's wait); a request being handled
    /// is answered in the same turn of the loop.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open
            .iter()
            .filter_map(|c| match c.phase {
                Phase::Handling => None,
                Phase::Held { until } => Some(until),
                _ => Some(c.deadline),
            })
            .min()
    }

    /// Holds the reply to `id` until the server is ready, at most `until`:
    /// false, and nothing held, when the share of connections that may wait is
    /// taken (or the limit is passed). So held replies can never take every
    /// connection: at least a quarter of them (one at the least) stay for
    /// requests answered at once, such as `stop`.
    pub fn hold(&mut self, id: ClientId, until: Instant) -> bool {
        if !self.can_hold(id) {
            return false;
        }
        match self.open.iter_mut().find(|c| c.id == id) {
            Some(client) => {
                client.phase = Phase::Held { until };
                true
            }
            None => false,
        }
    }

    /// Whether the reply to `id` may be held: it was accepted within the limit,
    /// and fewer replies are held than three quarters of the limit (all but a
    /// quarter, rounded down; one at the least).
    pub fn can_hold(&self, id: ClientId) -> bool {
        let held = self
            .open
            .iter()
            .filter(|c| matches!(c.phase, Phase::Held { .. }))
            .count();
        let share = (self.limit - self.limit / 4).max(1);
        held < share
            && self
                .open
                .iter()
                .any(|c| c.id == id && !c.past_limit && matches!(c.phase, Phase::Handling))
    }

    /// Whether the connection `id` is still open.
    pub fn is_open(&self, id: ClientId) -> bool {
        self.open.iter().any(|c| c.id == id)
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
        let mut newcomers = self.accept(socket, now);
        newcomers.extend(self.progress(known, now));
        // In the order they connected: one served past the limit (by `accept`)
        // must not overtake those accepted before it in the same turn, whose
        // requests were already whole too. So a `stop` sent after other
        // requests is handled after them, however late the loop came to them.
        newcomers.sort_by_key(|(id, _)| *id);
        complete.extend(newcomers);
        complete
    }

    /// Reads and writes what can be read and written now on the connections from
    /// index `from` on, drops the ones past their deadline, and returns the
    /// requests now complete.
    fn progress(&mut self, from: usize, now: Instant) -> Vec<(ClientId, Request)> {
        let mut complete = Vec::new();
        for client in &mut self.open[from..] {
            match client.phase {
                Phase::Held { until } if now >= until => {
                    client.answer(&Reply::refused(
                        Refusal::Timeout,
                        "the server was not ready within the client's wait",
                    ));
                    continue;
                }
                Phase::Writing { .. } if now >= client.deadline => {
                    client.expire();
                    continue;
                }
                // A request that is whole by now is served, however late the
                // loop came to it (a stopped supervisor, resumed): its client
                // was told the supervisor would act on it.
                Phase::Reading(ref mut buffer) if now >= client.deadline => {
                    match read_some(&mut client.stream, buffer) {
                        Some(Ok(request)) => {
                            client.phase = Phase::Handling;
                            complete.push((client.id, request));
                        }
                        Some(Err(reply)) => client.answer(&reply),
                        None => client.expire(),
                    }
                    continue;
                }
                _ => {}
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
                Phase::Handling | Phase::Held { .. } if has_gone(&mut client.stream) => {
                    client.phase = Phase::Closed
                }
                Phase::Handling | Phase::Held { .. } | Phase::Closed => {}
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

    /// Accepts every pending connection. Past the limit (or out of descriptors),
    /// a connection whose request is already complete on arrival is served all
    /// the same, so that `stop` gets through whatever other clients hold: only
    /// one that would have to wait for its bytes is refused `busy`, at once.
    /// Returns the requests so served.
    fn accept(&mut self, socket: &mut ControlSocket, now: Instant) -> Vec<(ClientId, Request)> {
        let mut complete = Vec::new();
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
                past_limit: false,
            };
            self.next += 1;
            // Answered at once into an empty socket buffer, then dropped.
            if let Some(refusal) = foreign_peer(&client.stream) {
                client.answer(&refusal);
                continue;
            }
            let busy = if socket.listener.took_reserve() {
                Reply::refused(Refusal::Busy, "busy: out of file descriptors; try again")
            } else if self.open.len() >= self.limit {
                Reply::refused(
                    Refusal::Busy,
                    format!(
                        "busy: {} control connections are open; try again",
                        self.limit
                    ),
                )
            } else {
                self.open.push(client);
                continue;
            };
            match read_some(&mut client.stream, &mut Vec::new()) {
                // Served in this turn of the loop and closed, never held.
                Some(Ok(request)) => {
                    client.phase = Phase::Handling;
                    client.past_limit = true;
                    complete.push((client.id, request));
                    self.open.push(client);
                }
                Some(Err(reply)) => client.answer(&reply),
                None => client.answer(&busy),
            }
        }
        complete
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

/// The refusal of a peer of another user (or one that cannot be identified).
fn foreign_peer(stream: &ControlStream) -> Option<Reply> {
    match stream.peer_user() {
        Ok(uid) if uid == sys::current_user() => None,
        Ok(uid) => Some(Reply::refused(
            Refusal::ForeignPeer,
            format!("refused: peer uid {uid} is not this supervisor's user"),
        )),
        Err(e) => Some(Reply::refused(
            Refusal::ForeignPeer,
            format!("refused: cannot identify the peer: {e}"),
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::client::exchange;
    /// A control socket in a fresh directory of its own, removed on drop.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("ocwrap-control-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn socket(&self) -> std::path::PathBuf {
            self.0.join("x.sock")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Serves `socket` until `want` requests are complete, as the loop would.
    fn serve(
        clients: &mut Clients,
        socket: &mut ControlSocket,
        want: usize,
    ) -> Vec<(ClientId, Request)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut complete = Vec::new();
        while complete.len() < want {
            assert!(Instant::now() < deadline, "no {want} requests within 10 s");
            complete.extend(clients.service(socket, Instant::now()));
            sys::poll_readable(&[socket.waitable()], Some(Duration::from_millis(50))).unwrap();
        }
        complete
    }

    /// A client that sends nothing, connected and served until it is accepted
    /// (the first connection of `clients`).
    fn silent_client(
        clients: &mut Clients,
        socket: &mut ControlSocket,
        path: &std::path::Path,
    ) -> ControlStream {
        let silent = ControlStream::connect(path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while clients.open.is_empty() {
            assert!(
                Instant::now() < deadline,
                "the silent client is never accepted"
            );
            clients.service(socket, Instant::now());
        }
        silent
    }

    #[test]
    fn past_the_limit_a_request_complete_on_arrival_is_served() {
        let scratch = Scratch::new("limit");
        let mut socket = ControlSocket::bind(&scratch.socket()).unwrap();
        let mut clients = Clients {
            limit: 1,
            ..Clients::default()
        };
        // A silent client takes the one connection.
        let _silent = silent_client(&mut clients, &mut socket, &scratch.socket());
        let deadline = Instant::now() + Duration::from_secs(10);
        // A stop whose bytes are there when it is accepted gets through.
        let mut stop = ControlStream::connect(&scratch.socket()).unwrap();
        stop.write_all_until(b"{\"op\":\"stop\"}\n", deadline)
            .unwrap();
        let served = serve(&mut clients, &mut socket, 1);
        assert_eq!(served[0].1, Request::Stop);
        let record_less = Reply::refused(Refusal::Stopping, "test");
        clients.reply(served[0].0, &record_less);
        let line = stop.read_line_until(1024, deadline).unwrap();
        assert!(
            line.starts_with(b"{\"ok\":false,\"kind\":\"stopping\""),
            "{line:?}"
        );
        // One that sends nothing is refused at once, and can read why.
        let mut idle = ControlStream::connect(&scratch.socket()).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        let line = loop {
            clients.service(&mut socket, Instant::now());
            let mut chunk = [0u8; 256];
            match idle.read(&mut chunk) {
                Ok(n) => break chunk[..n].to_vec(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < until, "no refusal within 10 s");
                    sys::poll_readable(&[socket.waitable()], Some(Duration::from_millis(20)))
                        .unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert!(
            line.starts_with(b"{\"ok\":false,\"kind\":\"busy\""),
            "{line:?}"
        );
    }

    #[test]
    fn requests_whole_in_one_turn_are_handled_in_the_order_they_connected() {
        let scratch = Scratch::new("order");
        let mut socket = ControlSocket::bind(&scratch.socket()).unwrap();
        let mut clients = Clients {
            limit: 2,
            ..Clients::default()
        };
        let _silent = silent_client(&mut clients, &mut socket, &scratch.socket());
        let deadline = Instant::now() + Duration::from_secs(10);
        // Both pending at once, both whole: the status takes the last connection
        // within the limit, the stop comes past it and is served at accept.
        let mut status = ControlStream::connect(&scratch.socket()).unwrap();
        status
            .write_all_until(b"{\"op\":\"status\"}\n", deadline)
            .unwrap();
        let stop = ControlStream::connect(&scratch.socket());
        if !sys::CONTROL_BACKLOG {
            // Windows: the stop cannot connect before the status is accepted, so
            // the two never come in one turn and their order cannot be mixed.
            let refused = stop.expect_err("a second connection waiting at once");
            assert_eq!(refused.kind(), io::ErrorKind::TimedOut, "{refused}");
            return;
        }
        let mut stop = stop.unwrap();
        stop.write_all_until(b"{\"op\":\"stop\"}\n", deadline)
            .unwrap();
        let served = clients.service(&mut socket, Instant::now());
        let ops: Vec<bool> = served.iter().map(|(_, r)| *r == Request::Stop).collect();
        assert_eq!(
            ops,
            [false, true],
            "the status first, then the stop: {served:?}"
        );
    }

    #[test]
    fn held_replies_take_at_most_three_quarters_of_the_connections() {
        let scratch = Scratch::new("hold");
        let mut socket = ControlSocket::bind(&scratch.socket()).unwrap();
        let mut clients = Clients {
            limit: 8,
            ..Clients::default()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut streams = Vec::new();
        let mut served = Vec::new();
        // One at a time: a named pipe has one instance waiting for a client.
        for _ in 0..8 {
            let mut stream = ControlStream::connect(&scratch.socket()).unwrap();
            stream
                .write_all_until(b"{\"op\":\"status\",\"wait_ready\":true}\n", deadline)
                .unwrap();
            streams.push(stream);
            served.extend(serve(&mut clients, &mut socket, 1));
        }
        let later = Instant::now() + Duration::from_secs(60);
        let held: Vec<bool> = served
            .iter()
            .map(|(id, _)| clients.hold(*id, later))
            .collect();
        assert_eq!(held.iter().filter(|&&h| h).count(), 6, "{held:?}");
    }

    #[test]
    fn a_held_reply_is_answered_timeout_at_its_deadline() {
        let scratch = Scratch::new("deadline");
        let mut socket = ControlSocket::bind(&scratch.socket()).unwrap();
        let mut clients = Clients::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = ControlStream::connect(&scratch.socket()).unwrap();
        stream
            .write_all_until(
                b"{\"op\":\"status\",\"wait_ready\":true,\"wait_ms\":1}\n",
                deadline,
            )
            .unwrap();
        let served = serve(&mut clients, &mut socket, 1);
        assert_eq!(served[0].1.hold(), Duration::from_millis(1));
        assert!(clients.hold(served[0].0, Instant::now()));
        assert!(
            clients.next_deadline().is_some(),
            "a held reply has a deadline"
        );
        clients.service(&mut socket, Instant::now());
        let line = stream.read_line_until(1024, deadline).unwrap();
        assert!(
            line.starts_with(b"{\"ok\":false,\"kind\":\"timeout\""),
            "{line:?}"
        );
    }

    #[test]
    fn a_refusal_written_before_the_request_went_out_is_still_read() {
        let scratch = Scratch::new("refusal");
        let mut socket = ControlSocket::bind(&scratch.socket()).unwrap();
        let stream = ControlStream::connect(&scratch.socket()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // The supervisor's side refuses and closes before the client writes.
        let mut ours = loop {
            if let Some(accepted) = socket.listener.accept() {
                break accepted.unwrap();
            }
            assert!(Instant::now() < deadline, "never accepted");
            sys::poll_readable(&[socket.waitable()], Some(Duration::from_millis(50))).unwrap();
        };
        ours.write_all_until(&Reply::refused(Refusal::Busy, "busy").line(), deadline)
            .unwrap();
        drop(ours);
        let reply = exchange(stream, b"{\"op\":\"stop\"}\n", Instant::now(), deadline)
            .expect("the refusal is read");
        assert_eq!(reply.kind, Some(Refusal::Busy));
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
            Ok(Request::Status {
                wait_ready: false,
                wait_ms: None
            })
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
