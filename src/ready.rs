//! Readiness: when a supervised server counts as ready (record state `ready`).
//!
//! Without `--port` the server is ready once it has been exec'd. With `--port`, once
//! a TCP connection to it succeeds, or, with `--health PATH`, once `GET PATH` answers
//! 2xx. Every attempt has its own short timeout, so a server that accepts
//! connections but never answers cannot hang a probe. Probing runs on its own thread so the
//! supervisor's loop never blocks on a slow server; the thread reports by making a
//! socket readable, which the loop polls with everything else, and it stops by
//! itself once the server is ready or the supervisor drops the watch.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one connection attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between attempts: short, because `up` callers wait on it, and cheap, since
/// a refused loopback connect costs microseconds and probing stops once ready.
pub const INTERVAL: Duration = Duration::from_millis(10);

/// Where and how to probe.
#[derive(Clone, Debug)]
pub struct Probe {
    addrs: Vec<SocketAddr>,
    host_header: String,
    health: Option<String>,
}

impl Probe {
    pub fn new(host: &str, port: u16, health: Option<&str>) -> Probe {
        let bare = host.trim_matches(['[', ']']);
        let addrs = (bare, port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default();
        Probe {
            addrs,
            host_header: format!("{host}:{port}"),
            health: health.map(str::to_string),
        }
    }

    /// One attempt: does the port accept a connection now (and, with a health
    /// path, answer it with 2xx)?
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
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.host_header
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut status = String::new();
        if BufReader::new(stream)
            .take(512)
            .read_line(&mut status)
            .is_err()
        {
            return false;
        }
        // "HTTP/1.1 200 OK"
        status
            .split_whitespace()
            .nth(1)
            .is_some_and(|code| code.len() == 3 && code.starts_with('2'))
    }
}

/// A probing thread, reporting through a socket that becomes readable when ready.
#[derive(Debug)]
pub struct ReadyWatch {
    signal: UnixStream,
    stop: Arc<AtomicBool>,
}

impl ReadyWatch {
    pub fn start(probe: Probe) -> std::io::Result<ReadyWatch> {
        let (signal, mut report) = UnixStream::pair()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("ready-probe".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    if probe.check() {
                        let _ = report.write_all(b"r");
                        return;
                    }
                    std::thread::sleep(INTERVAL);
                }
            })?;
        Ok(ReadyWatch { signal, stop })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.signal.as_fd()
    }
}

impl Drop for ReadyWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
