//! The removal of dead supervisors' registrations (docs/DESIGN.md,
//! "Registrations"): [`sweep`] runs first in every command that opens the state
//! dir; `gc` removes what cannot be trusted. Before a dead supervisor's files go,
//! the leftovers of its tree are torn down: only processes that carry its exact
//! tree marker in their environment and started after it. A free lock alone
//! proves nothing: a record copied under another name, or the registration of a
//! supervisor whose state dir was just wiped, names a supervisor that is alive.

use std::time::{Duration, Instant};

use super::StateDir;
use super::junk::Cleared;
use super::lock::{self, Lock};
use super::registration::{Clearing, Files, remove_registration};
use super::survey::{DeadSupervisor, Fate, Found, LockFile};
use crate::contain;
use crate::diag;
use crate::identity::Stem;
use crate::identity::{SupervisorId, TreeMarker};
use crate::pins::Pins;
use crate::process::{Pid, ProcInfo};
use crate::sys::{Signal, Waitable};
use crate::teardown::{Teardown, Tree};

/// A registration removed by [`sweep`] or `gc`.
#[derive(Debug)]
pub struct Removed {
    pub stem: Stem,
    pub problem: Option<String>,
    /// The leftover processes that were torn down.
    pub killed: Vec<Pid>,
    /// What became of each entry, with [`Clearing::Junk`]; empty otherwise.
    pub cleared: Vec<Cleared>,
}

/// Removes the registration of every verifiably dead supervisor, tearing down its
/// leftovers first. Costs a lock probe per registration while nothing is dead.
pub fn sweep(state: &StateDir) -> Vec<Removed> {
    let removed: Vec<Removed> = state
        .stems()
        .into_iter()
        .filter(|stem| !lock::is_held(&state.lock_path(stem)))
        .filter(|stem| matches!(Found::look(state, stem).fate(), Fate::Dead(_)))
        .filter_map(|stem| remove_dead(state, &stem, Clearing::Files))
        .collect();
    for r in removed.iter().filter(|r| !r.killed.is_empty()) {
        diag::say(format_args!(
            "{}: its supervisor died; tore down {} leftover process(es)",
            r.stem,
            r.killed.len()
        ));
    }
    removed
}

/// Takes the lock of a registration that looked dead, looks again under the lock
/// (it may have changed), tears down the dead supervisors' leftovers and removes
/// the files (and junk, with [`Clearing::Junk`]). `None` when someone else holds
/// the lock or it is not dead after all.
pub fn remove_dead(state: &StateDir, stem: &Stem, clearing: Clearing) -> Option<Removed> {
    let lock_path = state.lock_path(stem);
    let lock = if LockFile::at(&lock_path) == LockFile::Regular {
        Lock::try_existing(lock_path).ok()??
    } else {
        Lock::try_acquire(lock_path).ok()??
    };
    let found = Found::look_holding(state, stem);
    let Fate::Dead(ids) = found.fate_of_contents() else {
        drop(lock);
        return None;
    };
    let killed = ids.iter().flat_map(tear_down).collect();
    let cleared = remove_registration(state, stem, Files::AtPaths(clearing), Some(lock));
    Some(Removed {
        problem: found.problem(),
        stem: found.stem,
        killed,
        cleared,
    })
}

/// Removes a registration whose files cannot be trusted (corrupt, not regular, or
/// a copy of another supervisor's record), if `still_so` holds for what is found
/// under its lock: the files and any junk under its names go, nothing is
/// signalled. For `gc` only.
pub fn remove_untrusted(
    state: &StateDir,
    stem: &Stem,
    still_so: impl Fn(&Found) -> bool,
) -> Option<Removed> {
    let lock_path = state.lock_path(stem);
    let lock = match Lock::try_acquire(lock_path.clone()) {
        Ok(Some(lock)) => Some(lock),
        Ok(None) => return None,
        // A lock path that is not a regular file cannot be locked: it is junk
        // itself. Any other failure (out of descriptors) proves nothing: a lock
        // file that cannot be locked now is left alone.
        Err(_) if matches!(LockFile::at(&lock_path), LockFile::NotRegular(_)) => None,
        Err(_) => return None,
    };
    let found = Found::look_holding(state, stem);
    if !still_so(&found) {
        // A lock file without a claim is ours (just made) or abandoned: not kept.
        if let Some(lock) = lock.filter(|_| found.claimed.is_none()) {
            lock.remove();
        }
        return None;
    }
    let cleared = remove_registration(state, stem, Files::AtPaths(Clearing::Junk), lock);
    Some(Removed {
        stem: stem.clone(),
        problem: found.problem(),
        killed: Vec::new(),
        cleared,
    })
}

/// The PIDs a sweep would tear down for a dead registration (for `gc --dry-run`).
pub fn leftovers_of(found: &Found) -> Vec<Pid> {
    match found.fate() {
        Fate::Dead(ids) => ids
            .into_iter()
            .flat_map(|dead| Leftovers::of(dead.id).members())
            .map(|p| p.pid)
            .collect(),
        _ => Vec::new(),
    }
}

/// Tears down what is left of a dead supervisor's tree and returns the PIDs that
/// were there. With cgroup containment that is its cgroup (killed by the kernel,
/// then removed); then, and in every case, the processes carrying its marker (a
/// descendant that moved itself out of the cgroup has it too): SIGTERM and
/// SIGKILL at once (their server already died of SIGKILL, by its parent-death
/// signal), then a wait until they are gone, at most the teardown's kill wait.
fn tear_down(dead: &DeadSupervisor) -> Vec<Pid> {
    let mut pids = Vec::new();
    if let Some(path) = &dead.cgroup {
        match contain::kill_leftover_cgroup(path, dead.id.marker()) {
            Ok(killed) => pids = killed,
            Err(e) => diag::say(format_args!("leftover cgroup {path}: {e}")),
        }
    }
    pids.extend(tear_down_marked(dead.id));
    // A cgroup member just killed may still show its marker.
    pids.sort();
    pids.dedup();
    pids
}

/// Tears down every process that carries `dead`'s tree marker (see the module
/// header) and returns their PIDs: what a supervisor's guard does the moment its
/// supervisor dies (docs/DESIGN.md, "The guard").
pub fn tear_down_marked(dead: SupervisorId) -> Vec<Pid> {
    let mut leftovers = Leftovers::of(dead);
    let pids: Vec<Pid> = leftovers.members().iter().map(|p| p.pid).collect();
    if !pids.is_empty() {
        let mut teardown = Teardown::new(Duration::ZERO);
        teardown.begin(Instant::now(), &mut leftovers);
        teardown.run_to_end(&mut leftovers);
    }
    pids
}

/// The verified leftovers of one dead supervisor's tree (see the module header).
struct Leftovers {
    marker: TreeMarker,
    me: Pid,
    /// The leftovers signalled so far, pinned; teardown wakes when one exits.
    pins: Pins,
}

impl Leftovers {
    fn of(dead: SupervisorId) -> Leftovers {
        Leftovers {
            marker: dead.marker(),
            me: Pid::current(),
            pins: Pins::new(),
        }
    }

    fn members(&self) -> Vec<ProcInfo> {
        self.marker.carriers(&[self.me])
    }
}

impl Tree for Leftovers {
    fn signal_all(&mut self, signals: &[Signal]) {
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

    fn waitables(&self) -> Vec<Waitable<'_>> {
        self.pins.waitables()
    }
}
