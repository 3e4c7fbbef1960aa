//! The server's process tree as ocwrap sees it, and the only code that signals it
//! (docs/DESIGN.md, "Lifecycle" and "Containment").
//!
//! Its members are found in one of three ways, so that the cost grows with the
//! tree and never with the host:
//! - cgroup containment: the cgroup's own list of processes. The kernel kills the
//!   whole cgroup with one write and says when it is empty;
//! - group containment: a walk down from the supervisor through each process's
//!   children. Where the supervisor is a child subreaper (Linux), a descendant
//!   that `setsid`+double-forked out of the group reparents to it and stays below
//!   it. Where there is none (macOS), such a descendant reparents to launchd and
//!   leaves the walk; each full look of teardown (its first, and the one before
//!   the tree is declared empty) then also scans the host for the tree marker
//!   its environment carries. An escapee that cleared its environment before it
//!   escaped is not found there;
//! - last resort, where the kernel lists no children: a scan of every process on
//!   the host, which `-v` reports.
//!
//! Kill-only-what-we-started holds because:
//! - the group is signalled only while its leader is our unreaped child: the leader
//!   is left a zombie until teardown ends (see [`ServerTree::leader_exited`]), so its
//!   PID, which is the group's ID, cannot be recycled in between;
//! - any other member is signalled through a pidfd opened after the look that found
//!   it, and only if the pidfd's process is still the one seen: the same start time
//!   (walk, scan) or still in our cgroup.
//!
//! Teardown sleeps on [`Tree::waitables`]: the pidfds of the members found so far
//! (one epoll set), or the cgroup's events. A process forked after the last look
//! makes no event; it is found at the next look, which comes when every member
//! known so far has exited, or at the grace deadline.

use std::collections::HashSet;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::contain::{self, Containment};
use crate::diag;
use crate::identity::SupervisorId;
use crate::pins::Pins;
use crate::process::{self, Pid, ProcInfo, RunState, Target};
use crate::sys::{self, Cgroup, ServerChild, Signal, Waitable};
use crate::teardown::Tree;

/// How long the end of teardown waits for the leader to become reapable.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// The most looks a walk takes to get two that agree (a tree that keeps forking
/// faster than it can be read is taken as last seen; teardown looks again later).
const MAX_LOOKS: usize = 8;

/// How members are found.
#[derive(Debug)]
enum Finder {
    Cgroup(Cgroup),
    Walk,
    Scan,
}

#[derive(Debug)]
pub struct ServerTree {
    supervisor: Pid,
    /// The supervisor's identity: its tree's marker.
    id: SupervisorId,
    /// Whether the supervisor is a child subreaper. Without one, looks also scan
    /// for the marker (see the module header).
    subreaper: bool,
    /// The supervisor's guard (`crate::guard`): its unreaped child, so its PID
    /// cannot be recycled, and never a member of the tree.
    guard: Option<Pid>,
    /// The server: the leader of its own group (or session), our child.
    server: ServerChild,
    leader: Pid,
    /// Where walks down the tree start: the supervisor, where it is the child
    /// subreaper every orphan of the tree reparents to (Linux); else the leader,
    /// below which its descendants stay linked (Windows keeps a dead parent's
    /// PID; macOS's orphans leave for launchd from either). So the supervisor's
    /// other children, Windows' console host among them, are never the tree.
    root: Pid,
    finder: Finder,
    /// Members found so far, pinned (walk and scan; a cgroup keeps its own list).
    pins: Pins,
    /// The last look's members, sorted by PID: a new look must agree with it.
    /// `None` until the first look: no look is not an empty tree.
    last_look: Option<Vec<ProcInfo>>,
    /// Signals the whole tree has been sent, in order.
    sent: Vec<Signal>,
    /// Whether the cgroup's events are in the wake set yet.
    watching_cgroup: bool,
    /// Whether the members were just found, with no wake-up since (so a signal
    /// sent now needs no new look: `begin` looks to see if the tree is empty,
    /// then signals it).
    just_found: bool,
}

impl ServerTree {
    /// `server` must be the leader of its own group or session, `containment`
    /// the one it was spawned into, `id` the supervisor (this process), and
    /// `guard` its guard if it has one.
    pub fn new(
        server: ServerChild,
        containment: Containment,
        id: SupervisorId,
        subreaper: bool,
        guard: Option<Pid>,
    ) -> ServerTree {
        let finder = match containment {
            Containment::Cgroup(cgroup) => Finder::Cgroup(cgroup),
            Containment::Group if sys::children_listed() => Finder::Walk,
            Containment::Group => {
                diag::note(
                    "this kernel lists no children: the tree is found by scanning every process on the host",
                );
                Finder::Scan
            }
        };
        ServerTree {
            supervisor: id.pid,
            id,
            subreaper,
            guard,
            leader: server.pid(),
            root: if subreaper { id.pid } else { server.pid() },
            server,
            finder,
            pins: Pins::new(),
            last_look: None,
            sent: Vec::new(),
            watching_cgroup: false,
            just_found: false,
        }
    }

    pub fn leader(&self) -> Pid {
        self.leader
    }

    /// Whether `pid` is a process of the server's tree: the leader, a member of
    /// its cgroup (or job), any process whose parents lead up to the supervisor
    /// (as a child subreaper, an ancestor of every descendant of the server, also
    /// of one that double-forked away), or one that carries the tree's marker.
    /// Never the guard.
    pub fn contains(&self, pid: Pid) -> bool {
        if Some(pid) == self.guard {
            return false;
        }
        if pid == self.leader || self.id.marker().is_carried_by(pid) {
            return true;
        }
        if let Finder::Cgroup(cgroup) = &self.finder
            && cgroup.members().is_ok_and(|members| members.contains(&pid))
        {
            return true;
        }
        descends_from(pid, self.root, |p| sys::proc_info(p)?.ppid)
    }

    /// The PIDs of the tree's live members now, for counting its connections.
    pub fn pids(&mut self) -> Vec<Pid> {
        self.look().iter().map(|p| p.pid).collect()
    }

    /// Forwards a signal to the server's group (docs/DESIGN.md, "Signals").
    pub fn forward(&self, signal: Signal) {
        if let Err(e) = sys::signal(Target::ProcessGroup(self.leader), signal) {
            diag::note(format_args!(
                "forwarding signal {signal} to group {}: {e}",
                self.leader
            ));
        }
    }

    /// Whether the server (the group leader) has exited. It is deliberately not
    /// reaped here: see the module header.
    pub fn leader_exited(&self) -> bool {
        self.server.has_exited().unwrap_or(true)
    }

    /// Whether the leader has exited with status 0 (it is not reaped).
    pub fn leader_succeeded(&self) -> bool {
        self.server.exited_successfully()
    }

    /// Whether any process of the tree runs, the leader aside once it exited:
    /// what the walk finds below the supervisor (in any containment), or, where
    /// the kernel lists no children, what the scan finds.
    pub fn has_live_members(&mut self) -> bool {
        match self.finder {
            Finder::Scan => !self.look().is_empty(),
            // The cgroup (on Windows, the job) holds members whose parents are
            // gone, where no subreaper keeps them below us.
            Finder::Cgroup(_) => !self.look().is_empty() || !self.walk().is_empty(),
            Finder::Walk => !self.walk().is_empty(),
        }
    }

    /// What becomes ready when the leader exits, where its exit wakes the loop no
    /// other way (on Unix, SIGCHLD does: nothing).
    pub fn exit_waitable(&self) -> Option<Waitable<'_>> {
        self.server.exit_waitable()
    }

    /// Reaps the leader at the end of teardown, returning its wait status.
    ///
    /// A multi-threaded leader (node, for one) shows as a zombie while its other
    /// threads are still exiting, and cannot be reaped until they are done; so this
    /// waits for it, for at most [`REAP_WAIT`].
    pub fn reap_leader(&self) -> Option<ExitStatus> {
        let deadline = Instant::now() + REAP_WAIT;
        loop {
            match self.server.reap() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                _ => return None,
            }
        }
    }

    /// Reaps every exited child except the leader: orphans that reparented to us as
    /// subreaper, and children of ours that died. Nothing stays `<defunct>`. Reads
    /// only our own children; reaping one that still runs is a no-op.
    pub fn reap_orphans(&self) {
        let children: Vec<Pid> = match self.finder {
            Finder::Scan => sys::all_processes()
                .into_iter()
                .filter(|p| p.ppid == Some(self.supervisor) && p.state == RunState::Dead)
                .map(|p| p.pid)
                .collect(),
            Finder::Cgroup(_) | Finder::Walk => sys::children(self.supervisor),
        };
        // The guard is never reaped while we live (`crate::guard`): its PID,
        // left out of the walk, must not be recycled into the tree.
        for child in children
            .into_iter()
            .filter(|&c| c != self.leader && Some(c) != self.guard)
        {
            let _ = sys::reap(child);
        }
    }

    /// Ends the containment once the tree is gone and the leader reaped: removes
    /// the server's cgroup.
    pub fn close(self) {
        if let Finder::Cgroup(cgroup) = self.finder {
            let path = cgroup.path().display().to_string();
            if let Err(e) = cgroup.remove() {
                diag::say(format_args!(
                    "cannot remove the server's cgroup {path}: {e}"
                ));
            }
        }
    }

    /// The live members now, sorted by PID (the leader included while it runs),
    /// read with the reserve descriptor free (see [`Pins`]).
    fn look(&mut self) -> Vec<ProcInfo> {
        let (finder, supervisor, guard) = (&self.finder, self.supervisor, self.guard);
        let (root, leader) = (self.root, self.leader);
        self.pins
            .with_room(|| look(finder, supervisor, guard, walk_from(root, leader, guard)))
    }

    /// Every live process of the tree, found by the walk whatever the
    /// containment: with a cgroup, what is in the subreaper tree but not in the
    /// cgroup (a descendant that moved itself to another cgroup) is found here.
    fn walk(&mut self) -> Vec<ProcInfo> {
        let walked = walk_from(self.root, self.leader, self.guard);
        self.pins.with_room(walked)
    }

    /// Pins the processes of the tree that are not in its cgroup (`inside`,
    /// just read): they left it, and only the walk finds them.
    fn pin_outside(&mut self, inside: &HashSet<Pid>) {
        for info in self.walk() {
            if !inside.contains(&info.pid) {
                self.pins.pin(info);
            }
        }
    }
}

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
fn outside(found: &[ProcInfo], marked: Vec<ProcInfo>, guard: Option<Pid>) -> Vec<ProcInfo> {
    marked
        .into_iter()
        .filter(|m| Some(m.pid) != guard && !found.iter().any(|f| f.pid == m.pid))
        .collect()
}

/// Every live process below `root` (see [`ServerTree`]'s field), and the leader
/// itself when it is the root, sorted by PID; never the guard. Called when the
/// walk is wanted: it reads the process table at once.
fn walk_from(root: Pid, leader: Pid, guard: Option<Pid>) -> impl FnOnce() -> Vec<ProcInfo> {
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
fn look(
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

impl ServerTree {
    /// Looks until two looks in a row agree (see [`agreed_look`]), then pins
    /// every member not pinned yet.
    fn find(&mut self) {
        let previous = self.last_look.take();
        let look = agreed_look(previous, || self.look());
        for info in &look {
            self.pins.pin(*info);
        }
        // Where no environment can carry the marker (Windows, whose job holds
        // the tree anyway: no guard is needed there) the scan would find nothing.
        if !self.subreaper
            && !matches!(self.finder, Finder::Cgroup(_))
            && sys::GUARDING != sys::Guarding::NotNeeded
        {
            let marked = self.id.marker().carriers(&[self.supervisor]);
            let escaped = outside(&look, marked, self.guard);
            if !escaped.is_empty() {
                diag::note(format_args!(
                    "{} processes carrying the tree marker outside the walk",
                    escaped.len()
                ));
            }
            for info in escaped {
                self.pins.pin(info);
            }
        }
        self.last_look = Some(look);
        self.just_found = true;
    }

    /// Drops the members that exited; once none is left, looks again.
    fn refresh(&mut self) {
        self.just_found = false;
        self.pins.drop_exited();
        if self.pins.is_empty() {
            self.find();
        }
    }

    /// Sends `signal` to the group unless it already had it; returns whether it did.
    fn signal_group_once(&self, signal: Signal) -> bool {
        // Safe while the leader is unreaped, which lasts until teardown ends.
        !self.sent.contains(&signal)
            && sys::signal(Target::ProcessGroup(self.leader), signal).is_ok()
    }

    fn signal_cgroup(&mut self, signals: &[Signal]) {
        let Finder::Cgroup(cgroup) = &self.finder else {
            return;
        };
        if !self.watching_cgroup {
            self.watching_cgroup = self.pins.watch_change(cgroup.events_fd());
        }
        // The tree outside the cgroup is walked once per call, not per signal.
        let mut walked = false;
        for &signal in signals {
            let Finder::Cgroup(cgroup) = &self.finder else {
                return;
            };
            let (inside, group) = if signal == sys::SIGKILL
                && let Some(inside) = kill_cgroup(cgroup)
            {
                (inside, false)
            } else {
                self.signal_members(signal)
            };
            if !walked {
                self.pin_outside(&inside);
                walked = true;
            }
            let reached = self.pins.send(signal, group.then_some(self.leader));
            if reached > 0 {
                diag::note(format_args!(
                    "{}: {reached} processes of the tree outside its cgroup",
                    crate::signals::name(signal)
                ));
            }
        }
    }

    /// Sends `signal` to the group (once) and to every member of the cgroup not
    /// in the group; returns the members and whether the group had it.
    fn signal_members(&mut self, signal: Signal) -> (HashSet<Pid>, bool) {
        let members = self.look();
        diag::note(format_args!(
            "{}: {} processes in the cgroup",
            crate::signals::name(signal),
            members.len()
        ));
        let group = self.signal_group_once(signal);
        let Finder::Cgroup(cgroup) = &self.finder else {
            return (HashSet::new(), group);
        };
        for member in &members {
            if group && member.pgid == Some(self.leader) {
                continue;
            }
            let sent = contain::signal_member(cgroup, member.pid, signal);
            if sent.as_ref().is_err_and(sys::is_out_of_descriptors) {
                let pid = member.pid;
                let _ = self
                    .pins
                    .with_room(|| contain::signal_member(cgroup, pid, signal));
            }
        }
        (members.iter().map(|m| m.pid).collect(), group)
    }

    fn signal_found(&mut self, signals: &[Signal]) {
        if !signals.iter().any(|s| !self.sent.contains(s)) {
            self.refresh();
        } else if !std::mem::take(&mut self.just_found) {
            self.find();
        }
        for &signal in signals {
            let group = self.signal_group_once(signal).then_some(self.leader);
            let reached = self.pins.send(signal, group);
            if reached > 0 {
                diag::note(format_args!(
                    "{}: {} processes of the tree",
                    crate::signals::name(signal),
                    reached
                ));
            }
        }
    }
}

impl Tree for ServerTree {
    /// A signal new to the tree goes to the group and to every member, looked up
    /// afresh; a repeated one (SIGKILL while killing) only to members found since.
    fn signal_all(&mut self, signals: &[Signal]) {
        if matches!(self.finder, Finder::Cgroup(_)) {
            self.signal_cgroup(signals);
        } else {
            self.signal_found(signals);
        }
        for &signal in signals {
            if !self.sent.contains(&signal) {
                self.sent.push(signal);
            }
        }
    }

    /// With a cgroup: empty once the cgroup is, and nothing of the subreaper
    /// tree is left outside it (looked for only then; what is found is pinned and
    /// has every signal the tree has had).
    fn is_empty(&mut self) -> bool {
        let Finder::Cgroup(cgroup) = &self.finder else {
            self.refresh();
            return self.pins.is_empty();
        };
        let populated = match cgroup.is_populated() {
            Ok(populated) => populated,
            Err(e) => {
                diag::note(format_args!("reading cgroup.events: {e}"));
                !self.look().is_empty()
            }
        };
        self.pins.drop_exited();
        if populated || !self.pins.is_empty() {
            return false;
        }
        let left = self.walk();
        if left.is_empty() {
            return true;
        }
        for info in left {
            self.pins.pin(info);
        }
        for signal in self.sent.clone() {
            self.pins.send(signal, Some(self.leader));
        }
        self.pins.is_empty()
    }

    fn waitables(&self) -> Vec<Waitable<'_>> {
        self.pins.waitables()
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

/// Kills the whole cgroup at once (`cgroup.kill`); the members it had just
/// before, or `None` where the kernel cannot (then they are signalled one by one).
fn kill_cgroup(cgroup: &Cgroup) -> Option<HashSet<Pid>> {
    let inside: HashSet<Pid> = cgroup.members().unwrap_or_default().into_iter().collect();
    match cgroup.kill() {
        Ok(true) => Some(inside),
        Ok(false) => None,
        Err(e) => {
            diag::say(format_args!("cgroup.kill failed: {e}"));
            None
        }
    }
}

/// The longest chain of parents followed up from a process: far more than any
/// real tree is deep, and a bound on a chain that PID reuse between reads fakes.
const MAX_DEPTH: usize = 4096;

/// Whether following `parent` up from `pid` reaches `ancestor` (not counting
/// `pid` itself), within [`MAX_DEPTH`] steps.
fn descends_from(pid: Pid, ancestor: Pid, parent: impl Fn(Pid) -> Option<Pid>) -> bool {
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
fn agreed_look(
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
    use crate::process::StartTime;
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
