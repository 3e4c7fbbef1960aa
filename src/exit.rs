//! Exit codes (docs/DESIGN.md, "Exit codes") as named constants, and the mapping from a server's wait
//! status to ocwrap's own exit code.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

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
    if let Some(code) = status.code() {
        // A wait status carries only the low 8 bits of the exit code.
        code as u8
    } else if let Some(signal) = status.signal() {
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
        assert_eq!(from_status(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(from_status(ExitStatus::from_raw(libc::SIGTERM)), 143);
        assert_eq!(from_status(ExitStatus::from_raw(libc::SIGKILL)), 137);
        assert_eq!(from_status(ExitStatus::from_raw(0)), 0);
    }
}
