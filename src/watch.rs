//! How the supervisor is woken to look at its owners (docs/DESIGN.md, "Lifecycle", rule 3).
//!
//! With pidfds each owner's exit makes a descriptor readable, so an idle supervisor
//! sleeps in `poll(2)` with no timeout and never wakes up. Without them (another
//! platform, an old kernel, `--watch-method poll`, or an owner whose pidfd could not
//! be opened) it looks every [`POLL_INTERVAL`]. Either way the decision "gone or not"
//! is made by [`crate::owner::Leases::sweep`] from the owner's start time.

use std::time::Duration;

use crate::cli::WatchMethodArg;
use crate::error::Error;
use crate::owner::Owner;
use crate::process::Pid;
use crate::sys::{self, AsWaitable, PidFd, Waitable};

/// How often owners are checked when polling (the design allows at most 250 ms).
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchMethod {
    Pidfd,
    Poll,
}

impl WatchMethod {
    /// `auto` becomes pidfd where the kernel has it; an explicit `pidfd` where it does
    /// not is an error rather than a silent downgrade.
    pub fn choose(arg: WatchMethodArg) -> Result<WatchMethod, Error> {
        match arg {
            WatchMethodArg::Poll => Ok(WatchMethod::Poll),
            WatchMethodArg::Auto if sys::pidfd_supported() => Ok(WatchMethod::Pidfd),
            WatchMethodArg::Auto => Ok(WatchMethod::Poll),
            WatchMethodArg::Pidfd => PidFd::open(Pid::current())
                .map(|_| WatchMethod::Pidfd)
                .map_err(Error::PidfdUnavailable),
        }
    }
}

/// The wake-up sources for the current owners.
#[derive(Debug)]
pub struct OwnerWatch {
    method: WatchMethod,
    pidfds: Vec<(Owner, PidFd)>,
    polled: Vec<Owner>,
}

impl OwnerWatch {
    pub fn new(method: WatchMethod) -> OwnerWatch {
        OwnerWatch {
            method,
            pidfds: Vec::new(),
            polled: Vec::new(),
        }
    }

    /// Starts watching `owner`. The pidfd is opened first and the start time checked
    /// after: if it still matches, the pidfd is known to name the owner itself and
    /// not a process that recycled its PID in between.
    pub fn add(&mut self, owner: Owner) {
        let pinned = match self.method {
            WatchMethod::Pidfd => PidFd::open(owner.pid).ok().filter(|_| owner.is_alive()),
            WatchMethod::Poll => None,
        };
        match pinned {
            Some(fd) => self.pidfds.push((owner, fd)),
            None => self.polled.push(owner),
        }
    }

    /// Stops watching owners whose leases are gone, closing their pidfds (a pidfd
    /// of an exited process stays readable and would make `poll` spin).
    pub fn remove(&mut self, gone: &[Owner]) {
        self.pidfds.retain(|(owner, _)| !gone.contains(owner));
        self.polled.retain(|owner| !gone.contains(owner));
    }

    /// What becomes ready when an owner exits.
    pub fn waitables(&self) -> impl Iterator<Item = Waitable<'_>> {
        self.pidfds.iter().map(|(_, fd)| fd.waitable())
    }

    /// How long `poll` may sleep before owners must be looked at again.
    pub fn next_check(&self) -> Option<Duration> {
        (!self.polled.is_empty()).then_some(POLL_INTERVAL)
    }
}
