//! The TCP readiness probe: the port accepting a connection, or with `--health
//! PATH`, `GET PATH` answering 2xx. The supervisor probes from its own event loop
//! ([`ReadyProbe`]): a
//! non-blocking connect, then (with a health path) a request and the status line,
//! each step waited on by `poll` with everything else, so a slow or mute server
//! never blocks the loop. A refused attempt is retried after a short pause that
//! grows from 1 ms to [`MAX_PAUSE`]: a refused loopback connect costs microseconds,
//! and the pause bounds how late the probe notices the port. An attempt that gets
//! no answer within [`ATTEMPT_TIMEOUT`] is abandoned and retried.
//!
//! [`Probe::check`] is the blocking one-shot form, for `up`'s "is something already
//! answering on this port?".

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::sys::{Connection, Interest, Waitable};

/// How long one attempt may take, from connect to the status line.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest pause between two attempts.
pub const MAX_PAUSE: Duration = Duration::from_millis(4);
/// The first pause between two attempts.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// The most of a response that is read to find its status line.
const MAX_STATUS_LINE: usize = 512;

/// Where and how to probe.
#[derive(Clone, Debug)]
pub struct Probe {
    addrs: Vec<SocketAddr>,
    host_header: String,
    health: Option<String>,
}

impl Probe {
    /// A connect to `host:port` (resolved now).
    pub fn connect(host: &str, port: u16) -> Probe {
        let addrs = (host, port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default();
        Probe {
            addrs,
            host_header: format!("{}:{port}", super::authority(host)),
            health: None,
        }
    }

    /// A connect to `host:port` and `GET path` answering 2xx.
    pub fn health(host: &str, port: u16, path: &str) -> Probe {
        Probe {
            health: Some(path.to_string()),
            ..Probe::connect(host, port)
        }
    }

    fn request(&self, path: &str) -> Vec<u8> {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.host_header
        )
        .into_bytes()
    }

    /// One blocking attempt: does the port accept a connection now (and, with a
    /// health path, answer it with 2xx)?
    pub fn check(&self) -> bool {
        self.addrs.iter().any(
            |addr| match TcpStream::connect_timeout(addr, ATTEMPT_TIMEOUT) {
                Ok(stream) => self
                    .health
                    .as_deref()
                    .is_none_or(|path| self.healthy(stream, path)),
                Err(_) => false,
            },
        )
    }

    fn healthy(&self, mut stream: TcpStream, path: &str) -> bool {
        let _ = stream.set_read_timeout(Some(ATTEMPT_TIMEOUT));
        let _ = stream.set_write_timeout(Some(ATTEMPT_TIMEOUT));
        if stream.write_all(&self.request(path)).is_err() {
            return false;
        }
        let mut status = Vec::new();
        if BufReader::new(stream)
            .take(MAX_STATUS_LINE as u64)
            .read_until(b'\n', &mut status)
            .is_err()
        {
            return false;
        }
        is_success(&status)
    }
}

/// Whether an HTTP status line ("HTTP/1.1 200 OK") says 2xx.
fn is_success(line: &[u8]) -> bool {
    String::from_utf8_lossy(line)
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.len() == 3 && code.starts_with('2'))
}

/// A probe driven by the supervisor's loop: it says which descriptor to wait on
/// and until when, and [`ReadyProbe::advance`] moves it on without blocking.
#[derive(Debug)]
pub struct ReadyProbe {
    probe: Probe,
    step: Step,
    pause: Duration,
}

#[derive(Debug)]
enum Step {
    /// Waiting to try again at this instant (first: the address index to try).
    Pause {
        until: Instant,
        next_addr: usize,
    },
    /// A connect is under way.
    Connecting {
        stream: Connection,
        addr: usize,
        give_up: Instant,
    },
    /// Connected; sending the health request (`sent` bytes are out).
    Sending {
        stream: Connection,
        request: Vec<u8>,
        sent: usize,
        give_up: Instant,
    },
    /// Reading the status line.
    Reading {
        stream: Connection,
        line: Vec<u8>,
        give_up: Instant,
    },
    Ready,
}

impl ReadyProbe {
    pub fn new(probe: Probe, now: Instant) -> ReadyProbe {
        ReadyProbe {
            probe,
            step: Step::Pause {
                until: now,
                next_addr: 0,
            },
            pause: FIRST_PAUSE,
        }
    }

    /// What to wait on now, if the probe is waiting on something.
    pub fn waitable(&self) -> Option<(Waitable<'_>, Interest)> {
        let (stream, interest) = match &self.step {
            Step::Connecting { stream, .. } | Step::Sending { stream, .. } => {
                (stream, Interest::Write)
            }
            Step::Reading { stream, .. } => (stream, Interest::Read),
            Step::Pause { .. } | Step::Ready => return None,
        };
        Some((stream.waitable(interest), interest))
    }

    /// When the loop must call [`ReadyProbe::advance`] at the latest.
    pub fn next_wake(&self) -> Option<Instant> {
        match &self.step {
            Step::Pause { until, .. } => Some(*until),
            Step::Connecting { give_up, .. }
            | Step::Sending { give_up, .. }
            | Step::Reading { give_up, .. } => Some(*give_up),
            Step::Ready => None,
        }
    }

    /// Moves the probe on as far as it can go now; true once the server is ready.
    pub fn advance(&mut self, now: Instant) -> bool {
        loop {
            let step = std::mem::replace(&mut self.step, Step::Ready);
            let (next, moved) = self.step_from(step, now);
            self.step = next;
            if matches!(self.step, Step::Ready) {
                return true;
            }
            if !moved {
                return false;
            }
        }
    }

    /// One transition; `moved` is false when the step must wait for its fd or time.
    fn step_from(&mut self, step: Step, now: Instant) -> (Step, bool) {
        match step {
            Step::Pause { until, next_addr } if now >= until => {
                (self.connect(next_addr, now), true)
            }
            Step::Connecting {
                stream,
                addr,
                give_up,
            } => self.connecting(stream, addr, give_up, now),
            Step::Sending {
                stream,
                request,
                sent,
                give_up,
            } => self.sending(stream, request, sent, give_up, now),
            Step::Reading {
                stream,
                line,
                give_up,
            } => self.reading(stream, line, give_up, now),
            other @ (Step::Pause { .. } | Step::Ready) => (other, false),
        }
    }

    /// Connecting: ready once connected without `--health`, else the request goes
    /// out; a failed or timed-out connect tries the next address.
    fn connecting(
        &mut self,
        stream: Connection,
        addr: usize,
        give_up: Instant,
        now: Instant,
    ) -> (Step, bool) {
        match stream.finished() {
            Some(Ok(())) => match &self.probe.health {
                None => (Step::Ready, true),
                Some(path) => (
                    Step::Sending {
                        request: self.probe.request(path),
                        stream,
                        sent: 0,
                        give_up,
                    },
                    true,
                ),
            },
            Some(Err(_)) => (self.retry(addr + 1, now), true),
            None if now >= give_up => (self.retry(addr + 1, now), true),
            None => (
                Step::Connecting {
                    stream,
                    addr,
                    give_up,
                },
                false,
            ),
        }
    }

    /// Sending the health request, as far as the socket takes it now.
    fn sending(
        &mut self,
        stream: Connection,
        request: Vec<u8>,
        mut sent: usize,
        give_up: Instant,
        now: Instant,
    ) -> (Step, bool) {
        match stream.write(&request[sent..]) {
            Ok(n) if n > 0 => {
                sent += n;
                let next = if sent == request.len() {
                    Step::Reading {
                        stream,
                        line: Vec::new(),
                        give_up,
                    }
                } else {
                    Step::Sending {
                        stream,
                        request,
                        sent,
                        give_up,
                    }
                };
                (next, true)
            }
            Err(e) if would_block(&e) && now < give_up => (
                Step::Sending {
                    stream,
                    request,
                    sent,
                    give_up,
                },
                false,
            ),
            _ => (self.retry(0, now), true),
        }
    }

    /// Reading the status line: ready on a 2xx, else a new attempt.
    fn reading(
        &mut self,
        stream: Connection,
        mut line: Vec<u8>,
        give_up: Instant,
        now: Instant,
    ) -> (Step, bool) {
        let mut chunk = [0u8; 256];
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => {
                line.extend_from_slice(&chunk[..n]);
                if line.contains(&b'\n') || line.len() >= MAX_STATUS_LINE {
                    if is_success(&line) {
                        (Step::Ready, true)
                    } else {
                        (self.retry(0, now), true)
                    }
                } else {
                    (
                        Step::Reading {
                            stream,
                            line,
                            give_up,
                        },
                        true,
                    )
                }
            }
            Err(e) if would_block(&e) && now < give_up => (
                Step::Reading {
                    stream,
                    line,
                    give_up,
                },
                false,
            ),
            _ => (self.retry(0, now), true),
        }
    }

    /// Starts a connect to the `at`-th address (wrapping), or pauses when every
    /// address was tried in this round.
    fn connect(&mut self, at: usize, now: Instant) -> Step {
        let Some(addr) = self.probe.addrs.get(at % self.probe.addrs.len().max(1)) else {
            return self.pause_until(0, now);
        };
        match Connection::start(addr) {
            Ok(stream) => Step::Connecting {
                stream,
                addr: at,
                give_up: now + ATTEMPT_TIMEOUT,
            },
            Err(_) => self.retry(at + 1, now),
        }
    }

    /// After a failed attempt: the next address at once, or, after the last one, a
    /// pause that doubles up to [`MAX_PAUSE`].
    fn retry(&mut self, next_addr: usize, now: Instant) -> Step {
        if next_addr < self.probe.addrs.len() {
            Step::Pause {
                until: now,
                next_addr,
            }
        } else {
            self.pause_until(0, now)
        }
    }

    fn pause_until(&mut self, next_addr: usize, now: Instant) -> Step {
        let until = now + self.pause;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        Step::Pause { until, next_addr }
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn probe_of(host: &str, port: u16, health: Option<&str>) -> Probe {
        match health {
            Some(path) => Probe::health(host, port, path),
            None => Probe::connect(host, port),
        }
    }

    /// Drives a probe until ready or `within` passes, sleeping in poll like the loop.
    fn drive(probe: &mut ReadyProbe, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if probe.advance(Instant::now()) {
                return true;
            }
            let wait = probe
                .next_wake()
                .map(|t| t.saturating_duration_since(Instant::now()));
            let sources: Vec<(Waitable<'_>, Interest)> = probe.waitable().into_iter().collect();
            crate::sys::poll(&sources, wait.or(Some(Duration::from_millis(5)))).unwrap();
        }
        false
    }

    #[test]
    fn a_listening_port_is_ready_and_a_closed_one_is_not() {
        let _quiet = crate::sys::fixture::LOOPBACK_TCP.lock();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut probe = ReadyProbe::new(probe_of("127.0.0.1", port, None), Instant::now());
        assert!(drive(&mut probe, Duration::from_secs(10)));
        drop(listener);
        let mut probe = ReadyProbe::new(probe_of("127.0.0.1", port, None), Instant::now());
        assert!(!drive(&mut probe, Duration::from_millis(50)));
        assert!(probe.next_wake().is_some(), "keeps trying");
    }

    #[test]
    fn a_health_path_must_answer_2xx() {
        let _quiet = crate::sys::fixture::LOOPBACK_TCP.lock();
        for (answer, ready) in [
            ("HTTP/1.1 204 No Content\r\n\r\n", true),
            ("HTTP/1.1 503 Busy\r\n\r\n", false),
        ] {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = std::thread::spawn(move || {
                listener.set_nonblocking(false).unwrap();
                let (mut conn, _) = listener.accept().unwrap();
                let mut request = [0u8; 1024];
                let _ = conn.read(&mut request);
                let _ = conn.write_all(answer.as_bytes());
                String::from_utf8_lossy(&request).into_owned()
            });
            let mut probe =
                ReadyProbe::new(probe_of("127.0.0.1", port, Some("/health")), Instant::now());
            assert_eq!(
                drive(
                    &mut probe,
                    Duration::from_millis(if ready { 10_000 } else { 300 })
                ),
                ready,
                "{answer}"
            );
            let request = server.join().unwrap();
            assert!(
                request.starts_with("GET /health HTTP/1.1\r\nHost: 127.0.0.1:"),
                "{request}"
            );
        }
    }

    #[test]
    fn a_mute_server_does_not_block_the_probe() {
        let _quiet = crate::sys::fixture::LOOPBACK_TCP.lock();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut probe = ReadyProbe::new(probe_of("127.0.0.1", port, Some("/")), Instant::now());
        let began = Instant::now();
        assert!(!probe.advance(Instant::now()));
        assert!(began.elapsed() < ATTEMPT_TIMEOUT, "advance never waits");
        drop(listener);
    }

    #[test]
    fn ipv6_hosts_are_bracketed_in_the_host_header() {
        let _quiet = crate::sys::fixture::LOOPBACK_TCP.lock();
        assert_eq!(probe_of("::1", 80, None).host_header, "[::1]:80");
        assert_eq!(probe_of("localhost", 80, None).host_header, "localhost:80");
    }
}
