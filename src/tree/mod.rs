//! The server's process tree as ocwrap sees it, and the only code that signals it
//! (docs/DESIGN.md, "Lifecycle" and "Containment").
//!
//! Its members are found in one of three ways, so that the cost grows with the
//! tree and never with the host:
//! - cgroup containment: the cgroup's own list of processes. The kernel kills the
//!   whole cgroup with one write and says when it is empty;
//! - group containment: a walk down through each process's children (`walk.rs`),
//!   from the supervisor where it is a child subreaper, else from the server
//!   (so that no other child of the supervisor, such as Windows' console host,
//!   is ever taken for the tree). Where the supervisor is a child subreaper
//!   (Linux), a descendant that `setsid`+double-forked out of the group reparents
//!   to it and stays below it. Where there is none (macOS), such a descendant reparents to launchd and
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
use crate::process::{Pid, ProcInfo, RunState, Target};
use crate::sys::{self, Cgroup, ServerChild, Signal, Waitable};
use crate::teardown::Tree;

mod walk;

use walk::{agreed_look, descends_from, look, outside, walk_from};

/// How long the end of teardown waits for the leader to become reapable.
const REAP_WAIT: Duration = Duration::from_secs(5);

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
