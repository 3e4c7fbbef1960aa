//! Exit codes (docs/DESIGN.md, "Exit codes") as named constants, and the mapping from a server's wait
//! status to ocwrap's own exit code.

use std::process::ExitStatus;

use crate::sys;

/// `run`: torn down by our own rule; other commands: success.
pub const SUCCESS: u8 = 0;
/// Other commands: failure (`stop`/`release` of a name nobody runs, `up` not ready).
pub const FAILURE: u8 = 1;
/// The command line could not be parsed or validated (clap uses 2 as well).
pub const USAGE: u8 = 2;
/// ocwrap itself failed: state, owners, lock, internal error.
pub const INTERNAL: u8 = 125;
/// COMMAND exists but cannot be executed.
pub const NOT_EXECUTABLE: u8 = 126;
/// COMMAND was not found.
pub const NOT_FOUND: u8 = 127;
/// Added to a signal number when the server died of that signal, as shells do.
const SIGNAL_BASE: u8 = 128;

/// The server's own code, or 128+n when it died of signal n.
pub fn from_status(status: ExitStatus) -> u8 {
    from_parts(status.code(), sys::exit_signal(&status))
}

/// The exit code for a process that exited with `code`, or died of `signal`.
fn from_parts(code: Option<i32>, signal: Option<i32>) -> u8 {
    if let Some(code) = code {
        // A wait status carries only the low 8 bits of the exit code.
        code as u8
    } else if let Some(signal) = signal {
        SIGNAL_BASE.saturating_add(signal as u8)
    } else {
        INTERNAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_signals_map_like_a_shell() {
        assert_eq!(from_parts(Some(7), None), 7);
        assert_eq!(from_parts(None, Some(sys::SIGTERM)), 143);
        assert_eq!(from_parts(None, Some(sys::SIGKILL)), 137);
        assert_eq!(from_parts(Some(0), None), 0);
        assert_eq!(from_parts(None, None), INTERNAL);
    }
}
