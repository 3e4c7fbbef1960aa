//! Owners and their leases: who the server lives for, and how we tell that an owner
//! is gone (docs/DESIGN.md, "Lifecycle", rule 3).
//!
//! An owner is a PID *plus its start time*. It is gone when its process has exited
//! (every thread of it: a leader that ended only its own thread is alive), when it
//! is a zombie (`kill(pid, 0)` would still succeed), or when its PID now belongs to
//! a process with another start time (PID reuse). How we are woken to look is the
//! business of [`crate::watch`]; this module only decides.

pub mod session;

use std::io;

use crate::config::OwnerSpec;
use crate::diag;
use crate::error::Error;
use crate::process::{Pid, ProcInfo, StartTime};
use crate::sys;

/// One process the server lives for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub pid: Pid,
    pub start: StartTime,
}

impl Owner {
    /// The owner `pid` as it is now, or `None` when no live process has that PID.
    pub fn observe(pid: Pid) -> Option<Owner> {
        sys::proc_info(pid)
            .filter(ProcInfo::is_live)
            .map(|info| Owner {
                pid,
                start: info.start,
            })
    }

    /// Whether `info` (what the PID shows now, if anything) is still this owner.
    pub fn matches(&self, info: Option<&ProcInfo>) -> bool {
        info.is_some_and(|i| i.pid == self.pid && i.start == self.start && i.is_live())
    }

    pub fn is_alive(&self) -> bool {
        self.matches(sys::proc_info(self.pid).as_ref())
    }
}

/// Why `pid` can never exit while it is our owner, or `None` when it can: init
/// (PID 1, also a container's), a kernel thread, or this ocwrap itself. A lease on
/// one of them would never end, and neither would the server.
pub fn immortal(pid: Pid) -> Option<&'static str> {
    if pid.is_init() {
        Some("init")
    } else if pid == Pid::current() {
        Some("ocwrap itself")
    } else if sys::is_kernel_thread(pid) {
        Some("a kernel thread")
    } else {
        None
    }
}

/// An owner a `release` names: its PID, and its start time when the client could
/// see it run (an owner the client saw gone is released by PID: its lease is
/// over either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerRef {
    pub pid: Pid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartTime>,
}

impl OwnerRef {
    /// `pid` as this process sees it now.
    pub fn observe(pid: Pid) -> OwnerRef {
        OwnerRef {
            pid,
            start: Owner::observe(pid).map(|o| o.start),
        }
    }
}

/// How an owner was found: said with `-v` and in `up --json`'s `leases`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    /// `--owner-pid`.
    Pid,
    /// `--owner parent`, the default, or `--owner session` outside any session:
    /// the caller's parent (past the npm package's launcher, see [`caller_parent`]).
    Parent,
    /// `--owner-ancestor NAME`.
    Ancestor,
    /// `--owner session`: the nearest ancestor with Claude Code's session record,
    /// its start time verified.
    SessionRecord,
    /// `--owner session`: the live session process whose record carries the
    /// session ID.
    SessionId,
    /// `--owner session`: the nearest ancestor named `claude`.
    SessionName,
}

impl FoundBy {
    pub fn describe(self) -> &'static str {
        match self {
            FoundBy::Pid => "given by --owner-pid",
            FoundBy::Parent => "the caller's parent",
            FoundBy::Ancestor => "the nearest ancestor of that name",
            FoundBy::SessionRecord => {
                "the Claude Code session: the nearest ancestor with a session record, start time verified"
            }
            FoundBy::SessionId => {
                "the Claude Code session: the live process whose session record has this session ID"
            }
            FoundBy::SessionName => {
                "the Claude Code session: the nearest ancestor named 'claude' (no verified session record)"
            }
        }
    }
}

/// One owner of the command line, as it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    pub pid: Pid,
    pub start: StartTime,
    pub found_by: FoundBy,
}

impl Lease {
    pub fn owner(&self) -> Owner {
        Owner {
            pid: self.pid,
            start: self.start,
        }
    }
}

/// The owners of `leases`, in order.
pub fn owners_of(leases: &[Lease]) -> Vec<Owner> {
    leases.iter().map(Lease::owner).collect()
}

/// What the owner rules need to know about the command that resolves them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller<'a> {
    /// A hook's session ID, for `--owner session` (see [`session`]).
    pub session_id: Option<&'a str>,
    /// The command returns while the server runs (`up`, `hook`, `release`), so
    /// "the caller's parent" looks past the npm package's launcher
    /// ([`caller_parent`]). `run` lives as long as its launcher, which is then the
    /// better owner.
    pub returns: bool,
    /// `--owner session` must find a session: no fallback to the caller's
    /// parent, which for a hook is its short-lived shell ([`Error::NoSession`]).
    pub session_required: bool,
}

impl Caller<'_> {
    /// A command that returns while the server runs (`up`, `release`).
    pub const RETURNS: Caller<'static> = Caller {
        session_id: None,
        returns: true,
        session_required: false,
    };
}

/// Resolves the owners of the command line into leases, before anything starts.
/// An owner that is not running, or that can never exit ([`immortal`]), is refused.
pub fn resolve(spec: &OwnerSpec, caller: Caller<'_>) -> Result<Vec<Lease>, Error> {
    let mut leases: Vec<Lease> = Vec::new();
    for (pid, found_by) in find(spec, caller)? {
        if let Some(reason) = immortal(pid) {
            return Err(Error::ImmortalOwner { pid, reason });
        }
        let owner = Owner::observe(pid).ok_or(Error::OwnerNotRunning(pid))?;
        if !leases.iter().any(|l| l.owner() == owner) {
            leases.push(Lease {
                pid,
                start: owner.start,
                found_by,
            });
        }
    }
    Ok(leases)
}

/// The PIDs `spec` names, and how each was found (said with `-v`), not yet checked
/// to be running: `release` drops the lease of an owner that is gone too.
pub fn find(spec: &OwnerSpec, caller: Caller<'_>) -> Result<Vec<(Pid, FoundBy)>, Error> {
    let parent = || {
        if caller.returns {
            caller_parent()
        } else {
            crate::sys::parent_pid()
        }
        .ok_or(Error::ParentUnknown)
    };
    let mut found: Vec<(Pid, FoundBy)> = Vec::new();
    let mut add = |pid: Pid, by: FoundBy| {
        diag::note(format_args!("owner {pid}: {}", by.describe()));
        found.push((pid, by));
    };
    if spec.parent {
        // The parent is read first thing: if it died before ocwrap got here, the
        // reported parent is already a reaper and the watch would wait forever. That
        // window is the caller's to close (with --owner-pid); see README. A reaper
        // that is init is at least refused, like any owner that can never exit.
        add(parent()?, FoundBy::Parent);
    }
    if spec.session {
        match session::find(caller.session_id) {
            Some(session) => add(session.pid, session.by),
            None if caller.session_required => return Err(Error::NoSession),
            None => {
                diag::note("no Claude Code session found above this process");
                add(parent()?, FoundBy::Parent);
            }
        }
    }
    for &pid in &spec.pids {
        add(pid, FoundBy::Pid);
    }
    if let Some(name) = &spec.ancestor {
        let pid = nearest_ancestor(name).ok_or_else(|| Error::AncestorNotFound(name.clone()))?;
        add(pid, FoundBy::Ancestor);
    }
    Ok(found)
}

/// The environment variable the npm package's launcher (`bin/ocwrap.js`, which
/// stays as ocwrap's parent, see docs/DESIGN.md, "npm packages") sets to
/// `LAUNCHER:CALLER`: its own PID and the PID of the process that ran it (under
/// `npx`, the process that ran `npx`).
pub const LAUNCHER_VAR: &str = "OCWRAP_LAUNCHER";

/// The caller's parent: this process's parent, or, when that parent is the npm
/// package's launcher ([`LAUNCHER_VAR`] names it), the launcher's caller, taken
/// only while it is an ancestor of this process within a few steps. The launcher
/// exits as soon as ocwrap does, so an `up` through `npx` would otherwise lease the
/// server to a process that is gone once `up` has answered.
pub fn caller_parent() -> Option<Pid> {
    let parent = crate::sys::parent_pid()?;
    let launched = std::env::var(LAUNCHER_VAR).ok().and_then(|value| {
        let (launcher, caller) = value.split_once(':')?;
        let launcher: Pid = launcher.parse().ok()?;
        let caller: Pid = caller.parse().ok()?;
        (launcher == parent).then_some(caller)
    });
    let Some(caller) = launched else {
        return Some(parent);
    };
    // The launcher's caller is at most npm, its shell and the launcher away.
    let mut current = parent;
    for _ in 0..4 {
        match sys::proc_info(current).and_then(|info| info.ppid) {
            Some(up) if up == caller => return Some(caller),
            Some(up) => current = up,
            None => break,
        }
    }
    Some(parent)
}

/// The nearest ancestor of this process (its parent first) whose executable or
/// argv[0] basename is `name`. The search ends at the first process that can never
/// exit ([`immortal`]: init, a kernel thread), which is never chosen.
pub fn nearest_ancestor(name: &str) -> Option<Pid> {
    let mut current = crate::sys::parent_pid()?;
    let mut seen = Vec::new();
    while immortal(current).is_none() && !seen.contains(&current) {
        if sys::process_names(current).iter().any(|n| n == name) {
            return Some(current);
        }
        seen.push(current);
        current = sys::proc_info(current)?.ppid?;
    }
    None
}

/// The live leases, minus the ones found gone by [`Leases::sweep`].
#[derive(Debug, Default)]
pub struct Leases {
    owners: Vec<Owner>,
}

impl Leases {
    pub fn new(owners: Vec<Owner>) -> Leases {
        Leases { owners }
    }

    pub fn owners(&self) -> &[Owner] {
        &self.owners
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Adds a lease; false if this owner already had one.
    pub fn add(&mut self, owner: Owner) -> bool {
        let new = !self.owners.contains(&owner);
        if new {
            self.owners.push(owner);
        }
        new
    }

    /// Drops the lease `named` names, if it has one: the lease of that PID, and
    /// with a start time only if it is the same process.
    pub fn release(&mut self, named: OwnerRef) -> Option<Owner> {
        let at = self
            .owners
            .iter()
            .position(|o| o.pid == named.pid && named.start.is_none_or(|s| s == o.start))?;
        Some(self.owners.remove(at))
    }

    /// Drops every lease.
    pub fn clear(&mut self) -> Vec<Owner> {
        std::mem::take(&mut self.owners)
    }

    /// Drops every lease whose owner `probe` shows gone; returns those. A look
    /// that failed (`Err`: out of descriptors, say) proves nothing, and the lease
    /// stays until a look succeeds.
    pub fn sweep(&mut self, probe: impl Fn(Pid) -> io::Result<Option<ProcInfo>>) -> Vec<Owner> {
        let (alive, gone): (Vec<Owner>, Vec<Owner>) =
            self.owners
                .iter()
                .partition(|owner| match probe(owner.pid) {
                    Ok(info) => owner.matches(info.as_ref()),
                    Err(_) => true,
                });
        self.owners = alive;
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::RunState;

    fn owner(pid: i32, start: u64) -> Owner {
        Owner {
            pid: Pid::new(pid).unwrap(),
            start: StartTime(start),
        }
    }

    fn shown(pid: i32, start: u64, state: RunState) -> ProcInfo {
        ProcInfo {
            pid: Pid::new(pid).unwrap(),
            ppid: Pid::new(1),
            pgid: Pid::new(pid),
            sid: Pid::new(pid),
            start: StartTime(start),
            state,
        }
    }

    #[test]
    fn a_reused_pid_with_another_start_time_is_gone() {
        let mut leases = Leases::new(vec![owner(100, 5000), owner(200, 6000)]);
        let gone = leases.sweep(|pid| {
            Ok(match pid.get() {
                100 => Some(shown(100, 9999, RunState::Live)), // recycled PID
                200 => Some(shown(200, 6000, RunState::Live)),
                _ => None,
            })
        });
        assert_eq!(gone, [owner(100, 5000)]);
        assert_eq!(leases.owners(), [owner(200, 6000)]);
    }

    #[test]
    fn a_zombie_or_missing_owner_is_gone() {
        let mut leases = Leases::new(vec![owner(100, 5000), owner(200, 6000)]);
        let gone = leases.sweep(|pid| {
            Ok(match pid.get() {
                100 => Some(shown(100, 5000, RunState::Dead)),
                _ => None,
            })
        });
        assert_eq!(gone.len(), 2);
        assert!(leases.is_empty());
    }

    #[test]
    fn a_look_that_failed_ends_no_lease() {
        let mut leases = Leases::new(vec![owner(100, 5000), owner(200, 6000)]);
        let gone = leases.sweep(|pid| match pid.get() {
            100 => Err(io::Error::other("too many open files")),
            _ => Ok(None),
        });
        assert_eq!(gone, [owner(200, 6000)]);
        assert_eq!(leases.owners(), [owner(100, 5000)]);
    }

    #[test]
    fn owners_that_can_never_exit_are_named() {
        assert_eq!(immortal(Pid::new(1).unwrap()), Some("init"));
        assert_eq!(immortal(Pid::current()), Some("ocwrap itself"));
    }

    #[test]
    fn resolving_an_immortal_owner_says_why() {
        for (pid, reason) in [
            (Pid::new(1).unwrap(), "init"),
            (Pid::current(), "ocwrap itself"),
        ] {
            let spec = OwnerSpec {
                pids: vec![pid],
                ..OwnerSpec::default()
            };
            match resolve(&spec, Caller::default()) {
                Err(Error::ImmortalOwner { pid: p, reason: r }) => {
                    assert_eq!((p, r), (pid, reason));
                }
                other => panic!("pid {pid}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_live_owner_keeps_its_lease() {
        let me = Owner::observe(Pid::current()).unwrap();
        let mut leases = Leases::new(vec![me]);
        assert!(leases.sweep(sys::proc_lookup).is_empty());
        assert_eq!(leases.owners(), [me]);
    }
}
