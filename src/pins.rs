//! Processes pinned by pidfds (or process handles): how teardown signals a member
//! only while it is surely the process seen, and sleeps until one exits
//! (docs/DESIGN.md, "Containment").

use std::collections::HashSet;

use crate::diag;
use crate::process::{Pid, ProcInfo};
use crate::sys::{self, DescriptorReserve, EventSet, PidFd, Signal, Waitable};

/// Processes pinned by pidfds, watched together: one descriptor (an epoll set) is
/// readable while any of them has exited, so teardown sleeps until one does.
///
/// A tree can hold more processes than the descriptor limit allows pidfds. The
/// ones that cannot be pinned are kept as seen (PID and start time) and signalled
/// all the same, each through a pidfd opened for that one signal in the
/// descriptor held in reserve, and closed again: the pidfd names the process
/// seen (its start time is checked once it is open), so a recycled PID is never
/// signalled. They are pinned as soon as descriptors come free, when pinned ones
/// exit; until then their exits wake nothing, and the tree counts as not empty
/// while any of them runs.
#[derive(Debug, Default)]
pub struct Pins {
    set: Option<EventSet>,
    pinned: Vec<Pinned>,
    unpinned: Vec<Unpinned>,
    reserve: DescriptorReserve,
}

#[derive(Debug)]
struct Pinned {
    info: ProcInfo,
    pidfd: PidFd,
    /// Signals this process has been sent by us, so none is sent twice.
    sent: Vec<Signal>,
}

/// A member seen but not pinned, for want of descriptors.
#[derive(Debug)]
struct Unpinned {
    info: ProcInfo,
    sent: Vec<Signal>,
}

/// The key of a watched change that is not a process exit (a cgroup's events).
const CHANGE_KEY: u64 = u64::MAX;

impl Pins {
    pub fn new() -> Pins {
        Pins::default()
    }

    fn set(&mut self) -> Option<&mut EventSet> {
        if self.set.is_none() {
            match EventSet::new() {
                Ok(set) => self.set = Some(set),
                Err(e) => diag::say(format_args!("cannot watch the tree for exits: {e}")),
            }
        }
        self.set.as_mut()
    }

    /// Runs `f` (a look at processes) with the reserve descriptor free, so that
    /// a tree pinned up to the descriptor limit can still be read.
    pub fn with_room<T>(&mut self, f: impl FnOnce() -> T) -> T {
        self.reserve.lend(f)
    }

    /// Pins `seen` unless it is pinned already: a pidfd is opened, then the PID
    /// must still have the start time seen, so the pidfd names that process and
    /// not one that recycled its PID. Out of descriptors, it is kept unpinned.
    pub fn pin(&mut self, seen: ProcInfo) {
        let same = |info: &ProcInfo| info.pid == seen.pid && info.start == seen.start;
        if self.pinned.iter().any(|p| same(&p.info)) || self.unpinned.iter().any(|u| same(&u.info))
        {
            return;
        }
        match self.open(seen) {
            Ok(Some(pidfd)) => self.watch(seen, pidfd, Vec::new()),
            Ok(None) => {}
            Err(()) => self.unpinned.push(Unpinned {
                info: seen,
                sent: Vec::new(),
            }),
        }
    }

    /// A pidfd on the process `seen`: `Ok(None)` when it is gone (or its PID
    /// recycled), `Err` when no descriptor is left to open one.
    fn open(&self, seen: ProcInfo) -> Result<Option<PidFd>, ()> {
        let short = |e: &std::io::Error| sys::is_out_of_descriptors(e);
        match PidFd::open(seen.pid) {
            // The check needs a descriptor too: the pidfd may have taken the last.
            Ok(pidfd) => match sys::proc_lookup(seen.pid) {
                Ok(now) => Ok(now
                    .is_some_and(|now| now.start == seen.start)
                    .then_some(pidfd)),
                Err(e) if short(&e) => Err(()),
                Err(_) => Ok(None),
            },
            Err(e) if short(&e) => Err(()),
            Err(_) => Ok(None),
        }
    }

    fn watch(&mut self, info: ProcInfo, pidfd: PidFd, sent: Vec<Signal>) {
        if let Some(set) = self.set() {
            let _ = set.watch_exit(&pidfd, info.pid.get() as u64);
        }
        self.pinned.push(Pinned { info, pidfd, sent });
    }

    /// Wakes [`Pins::waitables`] when `fd` signals a change (a cgroup's events).
    pub fn watch_change(&mut self, fd: Waitable<'_>) -> bool {
        self.set()
            .is_some_and(|set| set.watch_change(fd, CHANGE_KEY).is_ok())
    }

    /// Forgets (and closes) the pinned processes that have exited and the
    /// unpinned ones that are gone, then pins what descriptors now allow.
    pub fn drop_exited(&mut self) {
        if let Some(set) = &mut self.set {
            let exited: HashSet<u64> = set
                .ready(self.pinned.len() + 1)
                .unwrap_or_default()
                .into_iter()
                .collect();
            self.pinned
                .retain(|p| !exited.contains(&(p.info.pid.get() as u64)));
        }
        if self.unpinned.is_empty() {
            return;
        }
        let mut still = Vec::new();
        for waiting in std::mem::take(&mut self.unpinned) {
            match self.open(waiting.info) {
                Ok(Some(pidfd)) => self.watch(waiting.info, pidfd, waiting.sent),
                Ok(None) => {}
                Err(()) => still.push(waiting),
            }
        }
        // Those that could not be pinned: still running? One lend for them all.
        self.unpinned = self.reserve.lend(|| {
            still.retain(|w| {
                sys::proc_info(w.info.pid)
                    .is_some_and(|now| now.start == w.info.start && now.is_live())
            });
            still
        });
    }

    pub fn is_empty(&self) -> bool {
        self.pinned.is_empty() && self.unpinned.is_empty()
    }

    /// Sends `signal` to every pinned process that has not had it from us; those
    /// still in `group_signalled` (a group that was just sent it) only count as
    /// sent, so that no one gets a second SIGTERM. Membership is read again after
    /// the group signal: a process seen in the group may have left it (setsid)
    /// since, and then the group signal missed it. SIGKILL goes to every one of
    /// them all the same: it cannot be had twice. The unpinned get it through a
    /// pidfd of the moment (see the type's header).
    /// Returns how many processes had it.
    pub fn send(&mut self, signal: Signal, group_signalled: Option<Pid>) -> usize {
        // Whether `info` is in the group that just had `signal`; a look that
        // fails for want of descriptors is made again with the reserve's.
        let in_group = |info: &ProcInfo, reserve: &mut DescriptorReserve| {
            if signal == sys::SIGKILL || group_signalled.is_none() {
                return false;
            }
            let look = match sys::proc_lookup(info.pid) {
                Err(e) if sys::is_out_of_descriptors(&e) => {
                    reserve.lend(|| sys::proc_lookup(info.pid))
                }
                look => look,
            };
            matches!(look, Ok(Some(now)) if now.start == info.start && now.pgid == group_signalled)
        };
        let Pins {
            pinned,
            unpinned,
            reserve,
            ..
        } = self;
        let mut reached = 0;
        for pinned in pinned.iter_mut().filter(|p| !p.sent.contains(&signal)) {
            if in_group(&pinned.info, reserve) || pinned.pidfd.send_signal(signal).is_ok() {
                reached += 1;
            }
            pinned.sent.push(signal);
        }
        for waiting in unpinned.iter_mut().filter(|u| !u.sent.contains(&signal)) {
            let info = waiting.info;
            let had = in_group(&info, reserve)
                || reserve.lend(|| {
                    PidFd::open(info.pid).is_ok_and(|pidfd| {
                        sys::proc_info(info.pid).is_some_and(|now| now.start == info.start)
                            && pidfd.send_signal(signal).is_ok()
                    })
                });
            if had {
                reached += 1;
            }
            waiting.sent.push(signal);
        }
        reached
    }

    /// What to sleep on until a pinned process exits.
    pub fn waitables(&self) -> Vec<Waitable<'_>> {
        self.set
            .as_ref()
            .map(EventSet::waitables)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_send_each_signal_once_and_let_a_signalled_group_count() {
        let me = sys::proc_info(Pid::current()).unwrap();
        let mut pins = Pins::new();
        pins.pin(me);
        pins.pin(me);
        assert_eq!(pins.pinned.len(), 1, "pinned once");
        // Our own group "was signalled": nothing is actually sent to us.
        assert_eq!(pins.send(sys::SIGCONT, me.pgid), 1);
        assert_eq!(pins.send(sys::SIGCONT, None), 0, "not twice");
        pins.drop_exited();
        assert!(!pins.is_empty(), "we are alive");
    }
}
