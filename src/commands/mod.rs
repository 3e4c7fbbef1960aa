//! The commands that act on running (or dead) supervisors through the state dir:
//! `up`, `status`, `stop`, `release` and `gc`. Each reads records and locks, talks to live
//! supervisors over their control sockets, and never signals a process on a
//! record's word alone.

pub mod gc;
pub mod release;
pub mod status;
pub mod stop;
pub mod up;

use std::io::Write;

use serde::Serialize;

use crate::error::Error;
use crate::record::{self, Record, Unreadable};
use crate::state::StateDir;

/// One stem of the state dir as found now.
pub struct Entry {
    pub stem: String,
    /// A live supervisor holds the lock.
    pub live: bool,
    /// The record, or why it cannot be used; `None` when there is no record file.
    pub record: Option<Result<Record, Unreadable>>,
}

impl Entry {
    /// What is wrong with this entry, if anything, in a few words.
    pub fn problem(&self) -> Option<String> {
        match (&self.record, self.live) {
            (Some(Err(why)), _) => Some(format!("record {why}")),
            (Some(Ok(_)), false) => Some("stale: its supervisor is gone".into()),
            (None, false) => Some("stale: lock without a record".into()),
            (None, true) => Some("starting: no record yet".into()),
            (Some(Ok(_)), true) => None,
        }
    }

    pub fn record(&self) -> Option<&Record> {
        self.record.as_ref().and_then(|r| r.as_ref().ok())
    }
}

/// Every stem of the state dir (or just `only`), as it is now.
pub fn survey(state: &StateDir, only: Option<&str>) -> Vec<Entry> {
    state
        .stems()
        .into_iter()
        .filter(|stem| only.is_none_or(|o| o == stem))
        .map(|stem| {
            let path = state.record_path(&stem);
            let record = std::fs::symlink_metadata(&path)
                .ok()
                .map(|_| record::read(&path));
            Entry {
                live: record::is_held(state, &stem),
                stem,
                record,
            }
        })
        .collect()
}

/// The stem to act on, or a clear error when the name is not a valid one.
pub fn checked_stem(stem: String) -> Result<String, Error> {
    if crate::state::valid_name(&stem) {
        Ok(stem)
    } else {
        Err(crate::config::usage(
            clap::error::ErrorKind::InvalidValue,
            format!("'{stem}' is not a valid name ([A-Za-z0-9._-]{{1,64}})"),
        ))
    }
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
