//! ocwrap's own diagnostics: one line at a time to stderr, never blocking
//! (docs/DESIGN.md, "Platform seam").

use std::io::{self, Write};
use std::os::fd::AsFd;

use crate::sys::os;

/// Writes one diagnostic line to stderr only if the write cannot block now: a
/// stderr pipe nobody reads must never stall the supervisor (the line is then
/// dropped). Lines are below `PIPE_BUF`, so such a write is atomic.
pub fn write_stderr_line(line: &[u8]) {
    let stderr = io::stderr();
    if os::writable_now(stderr.as_fd()) {
        let _ = stderr.lock().write_all(line);
    }
}
