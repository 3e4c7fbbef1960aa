//! `ocwrap gc`: the explicit, `--dry-run`-able form of the sweep that every command
//! runs first (see [`crate::registration`]), plus the removal of what no sweep
//! touches because nothing in it can be verified.
//!
//! - A registration whose supervisor is verifiably dead (lock free, the supervisor
//!   it names gone): its verified leftovers are torn down and its files removed.
//! - A corrupt, symlinked or otherwise non-regular record or lock: removed; nothing
//!   is signalled for it.
//! - A record copied under another name (it names a running supervisor that holds
//!   another name): removed; nothing is signalled.
//! - Anything a live supervisor holds: listed, never touched.
//!
//! JSON (one object): `{"dry_run":…,"cleaned":[{"name":…,"problem":…,
//! "killed":[PID…]}],"live":[name…]}`.

use serde::Serialize;

use super::{print_json, print_line};
use crate::cli::GcArgs;
use crate::error::Error;
use crate::exit;
use crate::process::Pid;
use crate::registration::{self, Fate, Found, Removed};
use crate::state::{Name, StateDir};

#[derive(Serialize)]
struct GcJson {
    dry_run: bool,
    cleaned: Vec<Cleaned>,
    live: Vec<String>,
}

#[derive(Serialize)]
struct Cleaned {
    name: String,
    problem: Option<String>,
    killed: Vec<Pid>,
}

impl From<Removed> for Cleaned {
    fn from(r: Removed) -> Cleaned {
        Cleaned {
            name: r.stem,
            problem: r.problem,
            killed: r.killed,
        }
    }
}

pub fn run(args: GcArgs) -> Result<u8, Error> {
    // No implicit sweep first: gc is the sweep, and --dry-run must change nothing.
    let state = StateDir::open(args.state.state_dir.as_deref())?;
    let mut out = GcJson {
        dry_run: args.dry_run,
        cleaned: Vec::new(),
        live: Vec::new(),
    };
    for found in registration::survey(&state, None) {
        match found.fate() {
            Fate::Live => out.live.push(found.stem),
            _ if args.dry_run => out.cleaned.extend(plan(&found)),
            Fate::Dead(_) => out
                .cleaned
                .extend(registration::remove_dead(&state, &found.stem).map(Cleaned::from)),
            Fate::Unverifiable => out.cleaned.extend(
                registration::remove_untrusted(&state, &found.stem, |f| {
                    f.fate_of_contents() == Fate::Unverifiable
                })
                .map(Cleaned::from),
            ),
            Fate::NamesRunning(_) if is_copy(&found) => out.cleaned.extend(
                registration::remove_untrusted(&state, &found.stem, |f| {
                    matches!(f.fate_of_contents(), Fate::NamesRunning(_)) && is_copy(f)
                })
                .map(Cleaned::from),
            ),
            Fate::NamesRunning(_) => {}
        }
    }
    if args.json {
        print_json(&out);
    } else {
        report(&out);
    }
    Ok(exit::SUCCESS)
}

/// A record under a stem that is not its own: a copy of a running supervisor's
/// record. (A supervisor whose own registration was disturbed keeps its stem and
/// re-registers; it is left alone.)
fn is_copy(found: &Found) -> bool {
    found.record().is_some_and(|r| {
        let unnamed = Name::unnamed(r.supervisor.pid).to_string();
        r.name.as_deref().unwrap_or(&unnamed) != found.stem && found.stem != unnamed
    })
}

/// What gc would do with one entry, touching nothing.
fn plan(found: &Found) -> Option<Cleaned> {
    let acts = match found.fate() {
        Fate::Dead(_) | Fate::Unverifiable => true,
        Fate::NamesRunning(_) => is_copy(found),
        Fate::Live => false,
    };
    acts.then(|| Cleaned {
        name: found.stem.clone(),
        problem: found.problem(),
        killed: registration::leftovers_of(found),
    })
}

fn report(out: &GcJson) {
    let verb = if out.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for c in &out.cleaned {
        let why = c.problem.as_deref().unwrap_or("stale");
        let killed = if c.killed.is_empty() {
            "nothing signalled".to_string()
        } else {
            let pids: Vec<String> = c.killed.iter().map(Pid::to_string).collect();
            format!(
                "{} leftover process(es): {}",
                if out.dry_run { "would kill" } else { "killed" },
                pids.join(",")
            )
        };
        print_line(&format!("{verb} {} ({why}); {killed}", c.name));
    }
    if out.cleaned.is_empty() {
        print_line("nothing to clean");
    }
}
