//! ocwrap's own messages on stderr (`ocwrap: …`): errors always, decisions with `-v`.
//!
//! A supervisor's stderr is often a pipe nobody reads (a plugin spawned it with
//! stdio ignored, or the reader died). Writing there must never kill ocwrap (SIGPIPE
//! is ignored by the Rust runtime, and write errors are dropped here) nor block it:
//! a message is written only when the descriptor can take it now, and is dropped
//! otherwise. Messages are one short line, below `PIPE_BUF`, so such a write is atomic.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Longest message written whole; longer ones are cut (a pipe write of at most
/// `PIPE_BUF` = 4096 bytes is atomic and, when poll says writable, does not block).
const MAX_LINE: usize = 4000;

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// A decision, said only with `-v`.
pub fn note(message: impl Display) {
    if VERBOSE.load(Ordering::Relaxed) {
        say(message);
    }
}

/// An error or warning, always said.
pub fn say(message: impl Display) {
    let mut line = format!("ocwrap: {message}");
    if line.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line.push('\n');
    sys::write_stderr_line(line.as_bytes());
}
