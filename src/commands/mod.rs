//! The commands that act on running (or dead) supervisors through the state dir:
//! `up`, `status`, `stop`, `release` and `gc`, and `hook`, which is `up` or
//! `release` as a Claude Code hook. Each sweeps the registrations of
//! dead supervisors first, reads records and locks, talks to live supervisors over
//! their control sockets, and never signals a process on a record's word alone.
//! Besides them, `completions` and `man` describe ocwrap itself, from its clap
//! definition, and touch nothing.

pub mod completions;
pub mod gc;
pub mod hook;
pub mod man;
pub mod release;
pub mod status;
pub mod stop;
pub mod up;

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::Error;
use crate::state::StateDir;

/// Opens the state dir as every command does: checked, then swept of the
/// registrations of dead supervisors (and their leftovers).
pub fn open_state(path: Option<&Path>) -> Result<StateDir, Error> {
    let state = StateDir::open(path)?;
    crate::state::sweep::sweep(&state);
    Ok(state)
}

/// Writes one JSON value and a newline to stdout. A closed stdout is not our
/// problem to report: the caller went away.
pub fn print_json(value: &impl Serialize) {
    if let Ok(text) = serde_json::to_string(value) {
        let _ = writeln!(std::io::stdout(), "{text}");
    }
}

/// Writes a line to stdout, ignoring a closed stdout.
pub fn print_line(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}
