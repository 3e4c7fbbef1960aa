//! Finding the tree's members by walking: down through each process's children
//! from where the walk starts, up through parents to ask whether a process
//! descends from it, and looking again until two looks agree (see the parent
//! module's header for when each way is used).

use std::collections::HashSet;

use super::Finder;
use crate::process::{self, Pid, ProcInfo};
use crate::sys;

/// The most looks a walk takes to get two that agree (a tree that keeps forking
/// faster than it can be read is taken as last seen; teardown looks again later).
const MAX_LOOKS: usize = 8;

/// The children of a process as `children` lists them, without `guard`.
fn spare(guard: Option<Pid>, children: impl Fn(Pid) -> Vec<Pid>) -> impl Fn(Pid) -> Vec<Pid> {
    move |parent| {
        let mut found = children(parent);
        found.retain(|&c| Some(c) != guard);
        found
    }
}

/// The processes that carry the tree's marker (`marked`) but that a look
/// (`found`) did not find: escapees that left the walk. Never the guard.
pub(super) fn outside(
    found: &[ProcInfo],
    marked: Vec<ProcInfo>,
    guard: Option<Pid>,
) -> Vec<ProcInfo> {
    marked
        .into_iter()
        .filter(|m| Some(m.pid) != guard && !found.iter().any(|f| f.pid == m.pid))
        .collect()
}

/// Every live process below `root` (`ServerTree`'s `root`), and the leader
/// itself when it is the root, sorted by PID; never the guard. Called when the
/// walk is wanted: it reads the process table at once.
pub(super) fn walk_from(
    root: Pid,
    leader: Pid,
    guard: Option<Pid>,
) -> impl FnOnce() -> Vec<ProcInfo> {
    move || {
        let mut found = walk_once(root, spare(guard, sys::children), sys::proc_info);
        if root == leader
            && let Some(info) = sys::proc_info(leader).filter(ProcInfo::is_live)
        {
            found.push(info);
            found.sort_by_key(|p| p.pid);
        }
        found
    }
}

/// The live members `finder` finds now below `supervisor` (the walk, `walk`,
/// where it walks), sorted by PID, never the guard.
pub(super) fn look(
    finder: &Finder,
    supervisor: Pid,
    guard: Option<Pid>,
    walk: impl FnOnce() -> Vec<ProcInfo>,
) -> Vec<ProcInfo> {
    {
        let mut found: Vec<ProcInfo> = match finder {
            Finder::Cgroup(cgroup) => cgroup
                .members()
                .unwrap_or_default()
                .into_iter()
                .filter_map(sys::proc_info)
                .filter(ProcInfo::is_live)
                .collect(),
            Finder::Walk => walk(),
            Finder::Scan => process::descendants(&sys::all_processes(), supervisor)
                .into_iter()
                .filter(|p| p.is_live() && Some(p.pid) != guard)
                .collect(),
        };
        found.sort_by_key(|p| p.pid);
        found
    }
}

/// Every live process below `root`, sorted by PID, found by following each
/// process's children (`children`) and checking each one (`info`): a PID whose
/// process no longer has that parent was recycled in between and is skipped.
fn walk_once(
    root: Pid,
    children: impl Fn(Pid) -> Vec<Pid>,
    info: impl Fn(Pid) -> Option<ProcInfo>,
) -> Vec<ProcInfo> {
    let mut found = Vec::new();
    let mut seen = HashSet::from([root]);
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for pid in children(parent) {
            let Some(child) = info(pid).filter(|c| c.ppid == Some(parent)) else {
                continue;
            };
            if child.is_live() && seen.insert(pid) {
                found.push(child);
                frontier.push(pid);
            }
        }
    }
    found.sort_by_key(|p| p.pid);
    found
}

/// The longest chain of parents followed up from a process: far more than any
/// real tree is deep, and a bound on a chain that PID reuse between reads fakes.
const MAX_DEPTH: usize = 4096;

/// Whether following `parent` up from `pid` reaches `ancestor` (not counting
/// `pid` itself), within [`MAX_DEPTH`] steps.
pub(super) fn descends_from(pid: Pid, ancestor: Pid, parent: impl Fn(Pid) -> Option<Pid>) -> bool {
    let mut current = pid;
    for _ in 0..MAX_DEPTH {
        match parent(current) {
            Some(p) if p == ancestor => return true,
            Some(p) if p != current && !p.is_init() => current = p,
            _ => return false,
        }
    }
    false
}

/// Looks (with `look`) until two looks in a row agree; returns the last one.
///
/// Why twice: the kernel writes a children list a page at a time and drops its
/// locks in between, so a child forked (or a sibling reaped) while the list is
/// read can be skipped; and a walk that reads a parent's children just before
/// the parent exits, and the parent's state just after, misses the children the
/// exit handed to the subreaper. A child missed either way exists by the next
/// look, which then differs; two looks that agree saw no such change.
///
/// `previous`, the last look taken, counts as the first one, so a quiet tree
/// costs one walk. Without one (`None`, the first look of this tree) two fresh
/// looks are taken: an empty start must never agree with a look that missed
/// every member, or the tree would be taken for empty and not signalled.
pub(super) fn agreed_look(
    previous: Option<Vec<ProcInfo>>,
    mut look: impl FnMut() -> Vec<ProcInfo>,
) -> Vec<ProcInfo> {
    let mut previous = previous.unwrap_or_else(&mut look);
    let mut current = look();
    for _ in 1..MAX_LOOKS {
        if same_processes(&previous, &current) {
            break;
        }
        previous = current;
        current = look();
    }
    current
}

fn same_processes(a: &[ProcInfo], b: &[ProcInfo]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.pid == y.pid && x.start == y.start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{RunState, StartTime};
    use std::collections::HashMap;

    fn info(pid: i32, ppid: i32) -> ProcInfo {
        ProcInfo {
            pid: Pid::new(pid).unwrap(),
            ppid: Pid::new(ppid),
            pgid: Pid::new(pid),
            sid: Pid::new(pid),
            start: StartTime(pid as u64),
            state: RunState::Live,
        }
    }

    fn pids(found: &[ProcInfo]) -> Vec<i32> {
        found.iter().map(|p| p.pid.get()).collect()
    }

    #[test]
    fn without_a_subreaper_the_marked_escapees_the_walk_missed_are_added_and_never_the_guard() {
        // The supervisor is 10, its guard 11. The walk found the leader 20 and
        // its child 21; 30 double-forked away (its parent is now init), 21 also
        // carries the marker, and so does the guard's copy of the environment
        // in a world where it had one.
        let children: HashMap<i32, Vec<i32>> =
            HashMap::from([(10, vec![11, 20]), (20, vec![21]), (1, vec![30])]);
        let parents = HashMap::from([(11, 10), (20, 10), (21, 20), (30, 1)]);
        let guard = Pid::new(11);
        let walked = walk_once(
            Pid::new(10).unwrap(),
            spare(guard, |p| {
                children
                    .get(&p.get())
                    .into_iter()
                    .flatten()
                    .filter_map(|&c| Pid::new(c))
                    .collect()
            }),
            |p| parents.get(&p.get()).map(|&pp| info(p.get(), pp)),
        );
        assert_eq!(pids(&walked), [20, 21], "the walk spares the guard");
        let marked = vec![info(21, 20), info(30, 1), info(11, 10)];
        assert_eq!(pids(&outside(&walked, marked, guard)), [30]);
    }

    #[test]
    fn the_walk_follows_children_down_and_skips_the_dead_and_the_recycled() {
        let tree: HashMap<i32, Vec<i32>> =
            HashMap::from([(1, vec![10, 20]), (10, vec![11, 12]), (11, vec![13])]);
        let children = |p: Pid| {
            tree.get(&p.get())
                .map(|c| c.iter().filter_map(|&c| Pid::new(c)).collect())
                .unwrap_or_default()
        };
        let procs = |p: Pid| match p.get() {
            10 | 20 => Some(info(p.get(), 1)),
            11 | 12 => Some(info(p.get(), 10)),
            // 13's PID now belongs to a process with another parent.
            13 => Some(info(13, 99)),
            _ => None,
        };
        let root = Pid::new(1).unwrap();
        assert_eq!(pids(&walk_once(root, children, procs)), [10, 11, 12, 20]);
        let dead_20 = |p: Pid| {
            procs(p).map(|mut i| {
                if p.get() == 20 {
                    i.state = RunState::Dead;
                }
                i
            })
        };
        assert_eq!(pids(&walk_once(root, children, dead_20)), [10, 11, 12]);
    }

    #[test]
    fn a_walk_never_loops_on_a_cycle() {
        // Impossible at one instant, but PID reuse between reads could fake one.
        let children = |p: Pid| vec![Pid::new(if p.get() == 1 { 2 } else { 1 }).unwrap()];
        let procs = |p: Pid| Some(info(p.get(), if p.get() == 2 { 1 } else { 2 }));
        assert_eq!(pids(&walk_once(Pid::new(1).unwrap(), children, procs)), [2]);
    }

    #[test]
    fn descent_follows_parents_up_to_the_ancestor_and_stops_at_init_or_a_loop() {
        let parents: HashMap<i32, i32> = HashMap::from([(13, 11), (11, 10), (10, 1), (20, 1)]);
        let parent = |p: Pid| parents.get(&p.get()).and_then(|&q| Pid::new(q));
        let pid = |n| Pid::new(n).unwrap();
        assert!(descends_from(pid(13), pid(10), parent));
        assert!(descends_from(pid(11), pid(10), parent));
        assert!(
            !descends_from(pid(10), pid(10), parent),
            "not its own descendant"
        );
        assert!(!descends_from(pid(20), pid(10), parent));
        assert!(!descends_from(pid(99), pid(10), parent), "unknown");
        let cycle = |p: Pid| Pid::new(if p.get() == 5 { 6 } else { 5 });
        assert!(!descends_from(pid(5), pid(10), cycle), "bounded");
    }

    /// Replays a race seen in the chaos run: the server was killed just after it
    /// forked, between the walk reading the supervisor's children (the server
    /// only) and the server's state (a zombie), so the first look found nothing
    /// live; the child, handed to the supervisor by then, is in every later look.
    #[test]
    fn a_first_look_that_missed_everything_does_not_make_the_tree_empty() {
        let walk = |tree: HashMap<i32, Vec<i32>>, procs: HashMap<i32, ProcInfo>| {
            let children = move |p: Pid| -> Vec<Pid> {
                tree.get(&p.get())
                    .map(|c| c.iter().filter_map(|&c| Pid::new(c)).collect())
                    .unwrap_or_default()
            };
            walk_once(Pid::new(1).unwrap(), children, move |p: Pid| {
                procs.get(&p.get()).copied()
            })
        };
        let mut zombie = info(10, 1);
        zombie.state = RunState::Dead;
        // Read mid-exit: the supervisor's list still held only the server, whose
        // state was read once it was a zombie. Then: the child is the supervisor's.
        let mid_exit = || {
            walk(
                HashMap::from([(1, vec![10])]),
                HashMap::from([(10, zombie), (11, info(11, 1))]),
            )
        };
        let after = || {
            walk(
                HashMap::from([(1, vec![10, 11])]),
                HashMap::from([(10, zombie), (11, info(11, 1))]),
            )
        };
        assert!(mid_exit().is_empty(), "the fake replays the miss");
        let mut looks = vec![after(), after(), mid_exit()];
        let found = agreed_look(None, || looks.pop().unwrap());
        assert_eq!(pids(&found), [11], "no look yet is not an empty tree");
        // A previous look that saw the server running disagrees with the miss.
        let mut looks = vec![after(), after(), mid_exit()];
        let found = agreed_look(Some(vec![info(10, 1)]), || looks.pop().unwrap());
        assert_eq!(pids(&found), [11]);
        // A quiet tree costs one look.
        let mut count = 0;
        let found = agreed_look(Some(after()), || {
            count += 1;
            after()
        });
        assert_eq!((pids(&found), count), (vec![11], 1));
    }

    #[test]
    fn looks_agree_only_on_the_same_processes() {
        let a = [info(5, 1), info(6, 1)];
        let mut b = a;
        assert!(same_processes(&a, &b));
        b[1].start = StartTime(99);
        assert!(!same_processes(&a, &b));
        assert!(!same_processes(&a, &a[..1]));
    }
}
