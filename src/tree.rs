//! The server's process tree as ocwrap sees it, and the only code that signals it
//! (SPEC §3 rules 1, 5 and 7).
//!
//! The tree is the server's process group plus every descendant of the supervisor.
//! The supervisor is a child subreaper, so a descendant that `setsid`+double-forked
//! out of the group reparents to it and stays in that tree. Kill-only-what-we-started
//! holds because:
//! - the group is signalled only while its leader is our unreaped child: the leader
//!   is left a zombie until teardown ends (see [`ServerTree::leader_exited`]), so its
//!   PID, which is the group's ID, cannot be recycled in between;
//! - a descendant outside the group is signalled through a pidfd opened after the
//!   scan that found it, and only if the pidfd's process still has the start time
//!   seen in that scan.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::diag;
use crate::process::{self, Pid, ProcInfo, RunState, Target};
use crate::sys::{self, PidFd};
use crate::teardown::Tree;

/// How long the end of teardown waits for the leader to become reapable.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// Sends `signal` to the process `seen` describes, only if it is still that process:
/// a pidfd pins whatever holds the PID now, and its start time must equal the one
/// seen. A PID recycled since `seen` was taken is left alone.
pub fn signal_if_still(seen: &ProcInfo, signal: libc::c_int) {
    let Ok(pidfd) = PidFd::open(seen.pid) else {
        return;
    };
    if sys::proc_info(seen.pid).is_some_and(|now| now.start == seen.start) {
        let _ = pidfd.send_signal(signal);
    }
}

#[derive(Debug)]
pub struct ServerTree {
    supervisor: Pid,
    leader: Pid,
}

impl ServerTree {
    /// `leader` must be our child and the leader of its own group or session.
    pub fn new(leader: Pid) -> ServerTree {
        ServerTree {
            supervisor: Pid::current(),
            leader,
        }
    }

    pub fn leader(&self) -> Pid {
        self.leader
    }

    /// Forwards a signal to the server's group (SPEC §3 rule 6).
    pub fn forward(&self, signal: libc::c_int) {
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
        sys::has_exited(self.leader).unwrap_or(true)
    }

    /// Reaps the leader at the end of teardown, returning its wait status.
    ///
    /// A multi-threaded leader (node, for one) shows as a zombie while its other
    /// threads are still exiting, and cannot be reaped until they are done; so this
    /// waits for it, for at most [`REAP_WAIT`].
    pub fn reap_leader(&self) -> Option<ExitStatus> {
        let deadline = Instant::now() + REAP_WAIT;
        loop {
            match sys::reap(self.leader) {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                _ => return None,
            }
        }
    }

    /// Reaps every exited child except the leader: orphans that reparented to us as
    /// subreaper, and children of ours that died. Nothing stays `<defunct>`.
    pub fn reap_orphans(&self) {
        for child in sys::all_processes() {
            if child.ppid == Some(self.supervisor)
                && child.state == RunState::Dead
                && child.pid != self.leader
            {
                let _ = sys::reap(child.pid);
            }
        }
    }

    fn live_members(&self) -> Vec<ProcInfo> {
        process::descendants(&sys::all_processes(), self.supervisor)
            .into_iter()
            .filter(ProcInfo::is_live)
            .collect()
    }
}

impl Tree for ServerTree {
    fn signal_all(&mut self, signal: libc::c_int) {
        // Safe while the leader is unreaped, which lasts until teardown ends.
        let _ = sys::signal(Target::ProcessGroup(self.leader), signal);
        for member in self.live_members() {
            if member.pgid == Some(self.leader) {
                continue;
            }
            signal_if_still(&member, signal);
        }
    }

    fn is_empty(&mut self) -> bool {
        self.live_members().is_empty()
    }
}
