//! Exit codes (docs/DESIGN.md, "Exit codes") as named constants, and the mapping from a server's wait
//! status to ocwrap's own exit code.
//!
//! ocwrap's own codes fit a byte everywhere. A server's code is passed on as the
//! platform gives it: on Unix a wait status carries its low 8 bits, on Windows the
//! whole 32-bit code (a crash, `0xC0000005`, stays that and is not cut to 5), so
//! [`from_status`] and the code `ocwrap run` exits with are an `i32`.

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
const SIGNAL_BASE: i32 = 128;

/// The server's own code, or 128+n when it died of signal n.
pub fn from_status(status: ExitStatus) -> i32 {
    from_parts(status.code(), sys::exit_signal(&status))
}

/// The exit code for a process that exited with `code`, or died of `signal`.
fn from_parts(code: Option<i32>, signal: Option<i32>) -> i32 {
    match (code, signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => SIGNAL_BASE.saturating_add(signal),
        (None, None) => i32::from(INTERNAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_signals_map_like_a_shell() {
        assert_eq!(from_parts(Some(7), None), 7);
        // What `exit_signal` gives: the platform's number (SIGTERM and SIGKILL
        // are 15 and 9 on every Unix; Windows never gives one).
        assert_eq!(from_parts(None, Some(15)), 143);
        assert_eq!(from_parts(None, Some(9)), 137);
        assert_eq!(from_parts(Some(0), None), 0);
        assert_eq!(from_parts(None, None), i32::from(INTERNAL));
        // Windows' whole code (a crash) is kept, not cut to its low byte.
        assert_eq!(
            from_parts(Some(0xC000_0005_u32 as i32), None),
            0xC000_0005_u32 as i32
        );
    }
}
