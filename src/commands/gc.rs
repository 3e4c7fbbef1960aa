//! `ocwrap gc`: clean up after supervisors that died without cleaning up (SIGKILL,
//! OOM, power loss): remove their records, sockets and locks, and tear down the
//! leftovers of their server trees.
//!
//! A record whose lock is free belongs to a dead supervisor. Its server died with it
//! (parent-death signal), but grandchildren and escapees may live on. gc signals a
//! process only when all of these hold: it is alive, it started no earlier than the
//! recorded server, and its environment carries the exact tree marker of that dead
//! supervisor (`OCWRAP_TREE=<supervisor pid>.<start time>`, inherited by the whole
//! tree). A record's PIDs alone prove nothing: after reuse they name strangers, and
//! a grandchild's start time was never recorded. A corrupt or symlinked record
//! names nobody we can verify, so it is removed and nothing is signalled.
//!
//! JSON (one object): `{"dry_run":…,"cleaned":[{"name":…,"problem":…,
//! "killed":[PID…]}],"live":[name…]}`.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Entry, print_json, print_line, survey};
use crate::cli::GcArgs;
use crate::contain;
use crate::diag;
use crate::error::Error;
use crate::exit;
use crate::process::{Pid, ProcInfo, StartTime};
use crate::record::{Lock, Record};
use crate::state::StateDir;
use crate::sys;
use crate::teardown::{Teardown, Tree};
use crate::tree::Pins;

/// How long leftovers get between SIGTERM and SIGKILL.
const GC_GRACE: Duration = Duration::from_secs(2);

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

pub fn run(args: GcArgs) -> Result<u8, Error> {
    let state = StateDir::open(args.state.state_dir.as_deref())?;
    let mut out = GcJson {
        dry_run: args.dry_run,
        cleaned: Vec::new(),
        live: Vec::new(),
    };
    for entry in survey(&state, None) {
        if entry.live {
            out.live.push(entry.stem);
            continue;
        }
        let cleaned = if args.dry_run {
            Some(plan(&entry))
        } else {
            clean(&state, &entry)
        };
        out.cleaned.extend(cleaned);
    }
    if args.json {
        print_json(&out);
    } else {
        report(&out);
    }
    Ok(exit::SUCCESS)
}

/// What `clean` would do, touching nothing.
fn plan(entry: &Entry) -> Cleaned {
    let killed = entry
        .record()
        .map(|r| Leftovers::of(r).members().iter().map(|p| p.pid).collect())
        .unwrap_or_default();
    Cleaned {
        name: entry.stem.clone(),
        problem: entry.problem(),
        killed,
    }
}

/// Takes the dead supervisor's lock (so no new supervisor of that name starts
/// meanwhile), tears down verified leftovers, and removes what it left behind.
/// `None` when a new supervisor took the name in the meantime.
fn clean(state: &StateDir, entry: &Entry) -> Option<Cleaned> {
    let lock = Lock::try_acquire(state, &entry.stem).ok()??;
    let killed = match entry.record() {
        Some(record) => leftover_cgroup(record).unwrap_or_else(|| tear_down(Leftovers::of(record))),
        None => Vec::new(),
    };
    // Removes a symlinked record itself, never what it points to.
    let _ = std::fs::remove_file(state.record_path(&entry.stem));
    let _ = std::fs::remove_file(state.socket_path(&entry.stem));
    lock.remove();
    Some(Cleaned {
        name: entry.stem.clone(),
        problem: entry.problem(),
        killed,
    })
}

/// With cgroup containment the dead supervisor's cgroup holds exactly its
/// leftovers: kills them, removes the cgroup, and returns their PIDs. `None` when
/// the record names no cgroup, or it cannot be used (then the marker scan runs).
fn leftover_cgroup(record: &Record) -> Option<Vec<Pid>> {
    let path = record.cgroup.as_deref()?;
    let marker = contain::marker_value(record.supervisor.pid, record.supervisor.start);
    contain::kill_leftover_cgroup(path, &marker)
        .map_err(|e| diag::say(format_args!("leftover cgroup {path}: {e}")))
        .ok()
}

/// Runs the same teardown machine as a supervisor over the leftovers; returns the
/// PIDs that were there to signal.
fn tear_down(mut leftovers: Leftovers) -> Vec<Pid> {
    let pids: Vec<Pid> = leftovers.members().iter().map(|p| p.pid).collect();
    if pids.is_empty() {
        return pids;
    }
    let mut teardown = Teardown::new(GC_GRACE);
    teardown.begin(Instant::now(), &mut leftovers);
    teardown.run_to_end(&mut leftovers);
    pids
}

/// The verified leftovers of one dead supervisor's tree (see the module header).
struct Leftovers {
    marker: String,
    born_after: StartTime,
    me: Pid,
    /// The leftovers signalled so far, pinned; teardown wakes when one exits.
    pins: Pins,
}

impl Leftovers {
    fn of(record: &Record) -> Leftovers {
        Leftovers {
            marker: record.tree_marker(),
            born_after: record.server.start,
            me: Pid::current(),
            pins: Pins::new(),
        }
    }

    fn is_member(&self, p: &ProcInfo) -> bool {
        p.is_live()
            && p.pid != self.me
            && p.start >= self.born_after
            && sys::environ_has(p.pid, &self.marker)
    }

    fn members(&self) -> Vec<ProcInfo> {
        sys::all_processes()
            .into_iter()
            .filter(|p| self.is_member(p))
            .collect()
    }
}

impl Tree for Leftovers {
    fn signal_all(&mut self, signals: &[libc::c_int]) {
        for member in self.members() {
            self.pins.pin(member);
        }
        for &signal in signals {
            self.pins.send(signal, None);
        }
    }

    /// Scans again only once every pinned leftover has exited.
    fn is_empty(&mut self) -> bool {
        self.pins.drop_exited();
        self.pins.is_empty() && self.members().is_empty()
    }

    fn wake_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.pins.wake_fd().into_iter().collect()
    }
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
