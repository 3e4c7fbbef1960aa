//! Readiness: when a supervised server counts as ready (record state `ready`).
//!
//! Without `--port` the server is ready once it has been exec'd. With `--port`, once
//! a TCP connection to it succeeds. Probing runs on its own thread so the
//! supervisor's loop never blocks on a slow server; the thread reports by making a
//! socket readable, which the loop polls with everything else, and it stops by
//! itself once the server is ready or the supervisor drops the watch.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one connection attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between attempts.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// Where and how to probe.
#[derive(Clone, Debug)]
pub struct Probe {
    addrs: Vec<SocketAddr>,
}

impl Probe {
    pub fn tcp(host: &str, port: u16) -> Probe {
        let addrs = (host.trim_matches(['[', ']']), port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default();
        Probe { addrs }
    }

    /// One attempt: does anything accept a connection on the port now?
    pub fn check(&self) -> bool {
        self.addrs
            .iter()
            .any(|addr| TcpStream::connect_timeout(addr, ATTEMPT_TIMEOUT).is_ok())
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
