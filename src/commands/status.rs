//! `ocwrap status`: what ocwrap supervises now, as a table or as JSON.
//!
//! JSON (one object): `{"supervisors":[{"name":…,"live":…,"problem":…,
//! "record":{…}|null}]}`: `name` is the record's stem (`pid-N` for an unnamed
//! supervisor), `problem` is null for a healthy live supervisor. With `--name`,
//! `--port` or `--socket` and no live supervisor of that name, the same object also has
//! `"status":"error","kind":"not_running","error":…`, and the exit code is 1.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{open_state, print_json, print_line};
use crate::cli::StatusArgs;
use crate::error::Error;
use crate::exit;
use crate::state::record::Record;
use crate::state::survey::{Found, survey};

#[derive(Serialize)]
struct StatusJson<'a> {
    /// With `--name`/`--port`/`--socket` when no live supervisor has the name: "error".
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    supervisors: Vec<EntryJson<'a>>,
}

#[derive(Serialize)]
struct EntryJson<'a> {
    name: &'a str,
    live: bool,
    problem: Option<String>,
    record: Option<&'a Record>,
}

pub fn run(args: StatusArgs) -> Result<u8, Error> {
    let only = args.select.stem();
    let state = open_state(args.state.state_dir.as_deref())?;
    let entries = survey(&state, only.as_ref());
    let missing = only
        .filter(|_| !entries.iter().any(|e| e.live))
        .map(Error::NotRunning);
    if args.json {
        let supervisors = entries
            .iter()
            .map(|e| EntryJson {
                name: &e.stem,
                live: e.live,
                problem: e.problem(),
                record: e.record(),
            })
            .collect();
        // One object, the error's fields beside what was found (a stale or
        // corrupt record of that name, say).
        print_json(&StatusJson {
            status: missing.as_ref().map(|_| "error"),
            kind: missing.as_ref().map(Error::kind),
            error: missing.as_ref().map(|e| crate::error::one_line(e)),
            supervisors,
        });
        return Ok(missing.map_or(exit::SUCCESS, |e| {
            crate::diag::say(crate::error::one_line(&e));
            e.exit_code()
        }));
    }
    print_table(&entries);
    missing.map_or(Ok(exit::SUCCESS), Err)
}

fn print_table(entries: &[Found]) {
    if entries.is_empty() {
        print_line("nothing supervised");
        return;
    }
    let rows: Vec<[String; 7]> = entries.iter().map(row).collect();
    let header = [
        "NAME", "PID", "ENDPOINT", "STATE", "OWNERS", "UPTIME", "NOTE",
    ]
    .map(String::from);
    let mut widths = [0; 7];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        print_line(cells.join("  ").trim_end());
    }
}

fn row(entry: &Found) -> [String; 7] {
    let dash = || "-".to_string();
    let note = entry.problem().unwrap_or_default();
    match entry.record() {
        Some(r) => [
            entry.stem.to_string(),
            r.server.pid.to_string(),
            r.port
                .map(|p| p.to_string())
                .or_else(|| r.socket.clone())
                .unwrap_or_else(dash),
            if entry.live {
                format!("{:?}", r.state).to_lowercase()
            } else {
                "dead".into()
            },
            if r.owners.is_empty() {
                dash()
            } else {
                r.owners
                    .iter()
                    .map(|o| o.pid.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            },
            uptime(&r.started_at),
            note,
        ],
        None => [
            entry.stem.to_string(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
            note,
        ],
    }
}

fn uptime(started_at: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match crate::time::parse_rfc3339(started_at) {
        Some(then) if now >= then => {
            let s = now - then;
            match s {
                0..60 => format!("{s}s"),
                60..3600 => format!("{}m{}s", s / 60, s % 60),
                _ => format!("{}h{}m", s / 3600, s % 3600 / 60),
            }
        }
        _ => "-".into(),
    }
}
