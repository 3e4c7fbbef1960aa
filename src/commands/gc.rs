//! `ocwrap gc`: the explicit, `--dry-run`-able form of the sweep that every command
//! runs first (see [`crate::state::sweep`]), plus the removal of what no sweep
//! touches because nothing in it can be verified.
//!
//! - A registration whose supervisor is verifiably dead (lock free, the supervisor
//!   it names gone): its verified leftovers are torn down and its files removed.
//! - A corrupt, symlinked or otherwise non-regular record or lock: removed; nothing
//!   is signalled for it.
//! - A record copied under another name (it names a running supervisor that holds
//!   another name): removed; nothing is signalled.
//! - Junk under a name (see [`crate::state::junk`]), with the registration it is part of,
//!   or alone: a junk turn lock (of any name: no `up` can hold one), a directory
//!   where the control socket of a name with no registration belongs. A directory
//!   that is not empty is moved aside beside itself, not removed.
//! - Anything a live supervisor holds: listed, never touched.
//!
//! What gc cleared is listed under `cleaned`; a name with an entry that could be
//! neither removed nor moved aside is listed under `not_cleaned`, with the path and
//! why, and gc exits 1. `--dry-run` lists what the run would do, in the same form.
//!
//! JSON (one object): `{"dry_run":…,"cleaned":[{"name":…,"problem":…,
//! "killed":[PID…],"moved_aside":[{"path":…,"kind":…,"to":…}]}],
//! "not_cleaned":[{…,"left":[{"path":…,"kind":…,"error":…}]}],"live":[name…]}`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{print_json, print_line};
use crate::cli::GcArgs;
use crate::error::Error;
use crate::exit;
use crate::identity::{Name, Stem};
use crate::process::Pid;
use crate::state::StateDir;
use crate::state::junk::{self, Action, Cleared, Entry, Outcome, Role};
use crate::state::registration::{Clearing, junk_plan};
use crate::state::survey::{Fate, Found, survey};
use crate::state::sweep::{Removed, leftovers_of, remove_dead, remove_untrusted};

#[derive(Serialize)]
struct GcJson {
    dry_run: bool,
    cleaned: Vec<Report>,
    not_cleaned: Vec<Report>,
    live: Vec<Stem>,
}

/// What gc did (or, with `--dry-run`, would do) for one name.
#[derive(Serialize)]
struct Report {
    name: Stem,
    problem: Option<String>,
    killed: Vec<Pid>,
    /// Directories that were not empty, renamed beside themselves.
    moved_aside: Vec<MovedAside>,
    /// What is still there; only in `not_cleaned`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    left: Vec<Left>,
}

#[derive(Serialize)]
struct MovedAside {
    path: String,
    kind: &'static str,
    to: String,
}

#[derive(Serialize)]
struct Left {
    path: String,
    kind: &'static str,
    error: String,
}

impl Report {
    fn new(name: Stem, problem: Option<String>, killed: Vec<Pid>) -> Report {
        Report {
            name,
            problem,
            killed,
            moved_aside: Vec::new(),
            left: Vec::new(),
        }
    }

    /// Adds what became of entries that were cleared.
    fn with_cleared(mut self, cleared: Vec<Cleared>) -> Report {
        for c in cleared {
            let path = c.path.display().to_string();
            match c.outcome {
                Outcome::Removed => {}
                Outcome::MovedAside(to) => self.moved_aside.push(MovedAside {
                    path,
                    kind: c.kind,
                    to: to.display().to_string(),
                }),
                Outcome::Left(e) => self.left.push(Left {
                    path,
                    kind: c.kind,
                    error: e.to_string(),
                }),
            }
        }
        self
    }

    /// Adds what clearing these entries would do.
    fn with_planned(mut self, planned: Vec<Entry>) -> Report {
        for entry in planned {
            if let Action::MoveAside(to) = entry.action {
                self.moved_aside.push(MovedAside {
                    path: entry.path.display().to_string(),
                    kind: entry.kind,
                    to: to.display().to_string(),
                });
            }
        }
        self
    }
}

impl From<Removed> for Report {
    fn from(r: Removed) -> Report {
        Report::new(r.stem, r.problem, r.killed).with_cleared(r.cleared)
    }
}

pub fn run(args: GcArgs) -> Result<u8, Error> {
    // No implicit sweep first: gc is the sweep, and --dry-run must change nothing.
    let state = StateDir::open(args.state.state_dir.as_deref())?;
    let mut live = Vec::new();
    let mut reports = Vec::new();
    let registrations = survey(&state, None);
    for found in &registrations {
        match found.fate() {
            Fate::Live => live.push(found.stem.clone()),
            fate => reports.extend(clean(&state, found, fate, args.dry_run)),
        }
    }
    let registered: Vec<&Stem> = registrations.iter().map(|f| &f.stem).collect();
    let reported: Vec<Stem> = reports.iter().map(|r| r.name.clone()).collect();
    for (stem, path, role) in strays(&state, &registered, &reported) {
        reports.extend(clean_stray(stem, &path, role, args.dry_run));
    }
    let (not_cleaned, cleaned) = reports.into_iter().partition(|r| !r.left.is_empty());
    let out = GcJson {
        dry_run: args.dry_run,
        cleaned,
        not_cleaned,
        live,
    };
    if args.json {
        print_json(&out);
    } else {
        report(&out);
    }
    Ok(if out.not_cleaned.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// Removes (or, with `dry_run`, plans the removal of) a registration no live
/// process holds, by its fate; `None` when it is left alone.
fn clean(state: &StateDir, found: &Found, fate: Fate, dry_run: bool) -> Option<Report> {
    let stem = &found.stem;
    match fate {
        Fate::Live => None,
        _ if dry_run => plan(state, found),
        Fate::Dead(_) => remove_dead(state, stem, Clearing::Junk).map(Report::from),
        Fate::Unverifiable => {
            remove_untrusted(state, stem, |f| f.fate_of_contents() == Fate::Unverifiable)
                .map(Report::from)
        }
        Fate::NamesRunning(_) if is_copy(found) => remove_untrusted(state, stem, |f| {
            matches!(f.fate_of_contents(), Fate::NamesRunning(_)) && is_copy(f)
        })
        .map(Report::from),
        Fate::NamesRunning(_) => None,
    }
}

/// Clears (or plans to clear) one piece of junk that is part of no registration.
fn clean_stray(stem: Stem, path: &Path, role: Role, dry_run: bool) -> Option<Report> {
    let report = |kind| Report::new(stem, Some(junk::describe(kind, role)), Vec::new());
    if dry_run {
        Entry::at(path).map(|e| report(e.kind).with_planned(vec![e]))
    } else {
        junk::clear(path).map(|c| report(c.kind).with_cleared(vec![c]))
    }
}

/// Junk that is part of no registration gc removes: a turn lock that is junk, of
/// a name not already cleaned (a live one's too: no `up` can hold a junk turn lock),
/// and a directory where the socket of a name with no registration belongs. (A live
/// supervisor's socket path is left alone, whatever is there.)
fn strays(state: &StateDir, registered: &[&Stem], reported: &[Stem]) -> Vec<(Stem, PathBuf, Role)> {
    let turns = state
        .stems_of(&["up"])
        .into_iter()
        .filter(|stem| !reported.contains(stem))
        .map(|stem| (state.turn_path(&stem), stem, Role::Turn));
    let sockets = state
        .stems_of(&["sock"])
        .into_iter()
        .filter(|stem| !registered.contains(&stem))
        .map(|stem| (state.socket_path(&stem), stem, Role::Socket));
    turns
        .chain(sockets)
        .filter(|(path, _, role)| junk::in_the_way(path, *role).is_some())
        .map(|(path, stem, role)| (stem, path, role))
        .collect()
}

/// A record under a stem that is not its own: a copy of a running supervisor's
/// record. (A supervisor whose own registration was disturbed keeps its stem and
/// re-registers; it is left alone.)
fn is_copy(found: &Found) -> bool {
    found.record().is_some_and(|r| {
        // The record's name is its word only: compared as text, never trusted as a name.
        let unnamed = Name::unnamed(r.supervisor.pid);
        let own = r.name.as_deref().unwrap_or(&unnamed);
        own != found.stem.as_str() && unnamed.stem() != &found.stem
    })
}

/// What gc would do with one registration, touching nothing.
fn plan(state: &StateDir, found: &Found) -> Option<Report> {
    let acts = match found.fate() {
        Fate::Dead(_) | Fate::Unverifiable => true,
        Fate::NamesRunning(_) => is_copy(found),
        Fate::Live => false,
    };
    acts.then(|| {
        Report::new(found.stem.clone(), found.problem(), leftovers_of(found))
            .with_planned(junk_plan(state, &found.stem))
    })
}

fn report(out: &GcJson) {
    let (remove, clear, move_verb) = if out.dry_run {
        ("would remove", "would clear", "would move")
    } else {
        ("removed", "cleared", "moved")
    };
    let verb = |c: &Report| {
        if c.moved_aside.is_empty() {
            remove
        } else {
            clear
        }
    };
    let cleaned = out.cleaned.iter().map(|c| (verb(c), c));
    let not_cleaned = out.not_cleaned.iter().map(|c| ("could not clean", c));
    for (verb, c) in cleaned.chain(not_cleaned) {
        print_line(&format!(
            "{verb} {} ({}); {}",
            c.name,
            why(c),
            killed(c, out.dry_run)
        ));
        for m in &c.moved_aside {
            print_line(&format!(
                "{move_verb} {} ({}, not empty) aside to {}: look inside, then remove it by hand",
                m.path, m.kind, m.to
            ));
        }
        for left in &c.left {
            print_line(&format!(
                "{} ({}) is still there: {}; remove it by hand",
                left.path, left.kind, left.error
            ));
        }
    }
    if out.cleaned.is_empty() && out.not_cleaned.is_empty() {
        print_line("nothing to clean");
    }
}

fn why(c: &Report) -> &str {
    c.problem.as_deref().unwrap_or("stale")
}

fn killed(c: &Report, dry_run: bool) -> String {
    if c.killed.is_empty() {
        return "nothing signalled".to_string();
    }
    let pids: Vec<String> = c.killed.iter().map(Pid::to_string).collect();
    format!(
        "{} leftover process(es): {}",
        if dry_run { "would kill" } else { "killed" },
        pids.join(",")
    )
}
