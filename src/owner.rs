//! Owners and their leases: who the server lives for, and how we tell that an owner
//! is gone (docs/DESIGN.md, "Lifecycle", rule 3).
//!
//! An owner is a PID *plus its start time*. It is gone when its process has exited
//! (every thread of it: a leader that ended only its own thread is alive), when it
//! is a zombie (`kill(pid, 0)` would still succeed), or when its PID now belongs to
//! a process with another start time (PID reuse). How we are woken to look is the
//! business of [`crate::watch`]; this module only decides.

use std::io;

use crate::config::OwnerSpec;
use crate::control::OwnerRef;
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

/// Resolves the owners of the command line into leases, before anything starts.
/// An owner that is not running, or that can never exit ([`immortal`]), is refused.
pub fn resolve(spec: &OwnerSpec) -> Result<Vec<Owner>, Error> {
    let mut owners: Vec<Owner> = Vec::new();
    let mut add = |pid: Pid| -> Result<(), Error> {
        if let Some(reason) = immortal(pid) {
            return Err(Error::ImmortalOwner { pid, reason });
        }
        let owner = Owner::observe(pid).ok_or(Error::OwnerNotRunning(pid))?;
        if !owners.contains(&owner) {
            owners.push(owner);
        }
        Ok(())
    };
    if spec.parent {
        // The parent is read first thing: if it died before ocwrap got here, the
        // reported parent is already a reaper and the watch would wait forever. That
        // window is the caller's to close (with --owner-pid); see README. A reaper
        // that is init is at least refused, like any owner that can never exit.
        add(Pid::parent().ok_or(Error::ParentUnknown)?)?;
    }
    for &pid in &spec.pids {
        add(pid)?;
    }
    if let Some(name) = &spec.ancestor {
        add(nearest_ancestor(name).ok_or_else(|| Error::AncestorNotFound(name.clone()))?)?;
    }
    Ok(owners)
}

/// The nearest ancestor of this process (its parent first) whose executable or
/// argv[0] basename is `name`. The search ends at the first process that can never
/// exit ([`immortal`]: init, a kernel thread), which is never chosen.
pub fn nearest_ancestor(name: &str) -> Option<Pid> {
    let mut current = Pid::parent()?;
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
            match resolve(&spec) {
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
