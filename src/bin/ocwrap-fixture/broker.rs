//! `ocwrap-fixture broker`: a stand-in for a broker that listens on a local
//! socket (as codex's app-server broker does) and may declare its readiness.
//!
//! ```text
//! ocwrap-fixture broker SOCKET|- [--huge] [--wait-go] [--after MS]
//!                       [--notify] [--fd N] [--close-fd N]
//!     prints `broker <pid>`; with --huge sends two oversized notify messages
//!     whose first line is READY=1 (1 MiB and 64 KiB) to $NOTIFY_SOCKET, printing
//!     `huge <bytes> sent|failed <error>` for each; with --wait-go waits for a
//!     line on stdin; waits MS (its start-up work), then listens on SOCKET (unless
//!     `-`), printing `listening <SOCKET> at <ns since the epoch>`, and serves
//!     each connection until its peer closes it; with --notify sends READY=1 to
//!     $NOTIFY_SOCKET (`notified`); with --fd N writes a newline to descriptor N
//!     (`fd written`); with --close-fd N closes N without one (`fd closed`).
//!     Then it runs until killed.
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use ocwrap::sys;

use super::{Flags, block, say};

pub fn broker(rest: &[String]) -> ExitCode {
    let flags = Flags(rest);
    let Some(socket) = rest.first() else {
        return super::usage();
    };
    say(format_args!("broker {}", std::process::id()));
    let notify_socket = std::env::var_os("NOTIFY_SOCKET");
    if flags.has("--huge") {
        for size in [1 << 20, 64 << 10] {
            let mut message = b"READY=1\n".to_vec();
            message.resize(size, b'x');
            match notify_socket
                .as_deref()
                .map(|p| sys::fixture::send_notify(Path::new(p), &message))
            {
                Some(Ok(())) => say(format_args!("huge {size} sent")),
                Some(Err(e)) => say(format_args!("huge {size} failed {e}")),
                None => say(format_args!("huge {size} failed no NOTIFY_SOCKET")),
            }
        }
    }
    if flags.has("--wait-go") {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    if let Some(ms) = flags.value("--after") {
        std::thread::sleep(Duration::from_millis(u64::from(ms)));
    }
    if socket != "-" {
        if let Err(e) = sys::fixture::serve_local_socket(Path::new(socket)) {
            say(format_args!("listen failed: {e}"));
            return ExitCode::from(98);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        say(format_args!("listening {socket} at {}", now.as_nanos()));
    }
    if flags.has("--notify") {
        match notify_socket.as_deref() {
            Some(path) => match sys::fixture::send_notify(Path::new(path), b"STATUS=up\nREADY=1\n")
            {
                Ok(()) => say("notified"),
                Err(e) => say(format_args!("notify failed: {e}")),
            },
            None => say("notify failed: no NOTIFY_SOCKET"),
        }
    }
    for (flag, bytes, done) in [
        ("--fd", &b"\n"[..], "fd written"),
        ("--close-fd", &b""[..], "fd closed"),
    ] {
        if let Some(n) = flags.value(flag) {
            match sys::fixture::write_descriptor(n as i32, bytes) {
                Ok(()) => say(done),
                Err(e) => say(format_args!("{flag} failed: {e}")),
            }
        }
    }
    block()
}
