//! Typed process identities: PIDs, start times, kill targets, signals and process
//! snapshots.
//!
//! Raw integers become types here so that "which process" is never ambiguous: a
//! [`Pid`] is always a real process (> 0), a [`Target`] says whether a signal goes to
//! one process or to a whole group, and the negative PID that `kill(2)` wants for a
//! group is made in exactly one place. A [`Signal`] is a name, not a number: each
//! platform under `sys` maps it to its own numbers, where it has any. Nothing here
//! talks to the OS; see `sys`.

use std::fmt;

/// A process ID that names a real process: never 0 and never negative.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "i32", into = "i32")]
pub struct Pid(i32);

impl TryFrom<i32> for Pid {
    type Error = String;

    fn try_from(raw: i32) -> Result<Pid, String> {
        Pid::new(raw).ok_or_else(|| format!("{raw} is not a process ID"))
    }
}

impl From<Pid> for i32 {
    fn from(pid: Pid) -> i32 {
        pid.0
    }
}

impl Pid {
    /// Accepts only positive values; 0 and negatives mean "group" or "all" to `kill(2)`.
    pub fn new(raw: i32) -> Option<Pid> {
        (raw > 0).then_some(Pid(raw))
    }

    /// This process.
    pub fn current() -> Pid {
        Pid(std::process::id() as i32)
    }

    pub fn from_u32(raw: u32) -> Option<Pid> {
        i32::try_from(raw).ok().and_then(Pid::new)
    }

    pub fn get(self) -> i32 {
        self.0
    }

    /// PID 1 (init, or a container's init) is never signalled and never an owner
    /// that can die.
    pub fn is_init(self) -> bool {
        self.0 == 1
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for Pid {
    type Err = String;

    fn from_str(s: &str) -> Result<Pid, String> {
        s.parse::<i32>()
            .ok()
            .and_then(Pid::new)
            .ok_or_else(|| format!("'{s}' is not a process ID (a whole number above 0)"))
    }
}

/// When a process started, in the kernel's own unit (Linux: clock ticks since boot,
/// field 22 of `/proc/PID/stat`). A PID plus its start time names one process for
/// good: a recycled PID comes back with a different start time.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct StartTime(pub u64);

/// What a signal is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Process(Pid),
    ProcessGroup(Pid),
}

impl Target {
    /// The PID argument for `kill(2)`, or `None` when the target must never be
    /// signalled: PID 1, and so also group 1. `kill(0)`/`kill(-1)` cannot be built
    /// because a [`Pid`] is never below 1.
    pub fn for_kill(self) -> Option<i32> {
        match self {
            Target::Process(pid) | Target::ProcessGroup(pid) if pid.is_init() => None,
            Target::Process(pid) => Some(pid.get()),
            Target::ProcessGroup(pid) => Some(-pid.get()),
        }
    }
}

/// The signals ocwrap speaks of: POSIX's names, without their numbers, which differ
/// between platforms (SIGUSR1 is 10 on Linux, 30 on macOS) and which Windows does
/// not have. `sys` says what each means where it runs, and maps it to the
/// platform's number where one is needed (`sys::signal_number`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    Hup,
    Int,
    Quit,
    Kill,
    Usr1,
    Usr2,
    Term,
    Chld,
    Cont,
    Ttin,
    Ttou,
    Winch,
}

impl Signal {
    /// The POSIX name: "SIGTERM", "SIGKILL", ….
    pub fn name(self) -> &'static str {
        match self {
            Signal::Hup => "SIGHUP",
            Signal::Int => "SIGINT",
            Signal::Quit => "SIGQUIT",
            Signal::Kill => "SIGKILL",
            Signal::Usr1 => "SIGUSR1",
            Signal::Usr2 => "SIGUSR2",
            Signal::Term => "SIGTERM",
            Signal::Chld => "SIGCHLD",
            Signal::Cont => "SIGCONT",
            Signal::Ttin => "SIGTTIN",
            Signal::Ttou => "SIGTTOU",
            Signal::Winch => "SIGWINCH",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The run state letter of `/proc/PID/stat` that matters to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Running, sleeping, stopped: anything that can still act.
    Live,
    /// Exited but not yet reaped (`Z`), or being torn down by the kernel (`X`):
    /// every thread of it. A thread-group leader that ended its own thread while
    /// others run is [`RunState::Live`].
    Dead,
}

/// One process as seen at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: Pid,
    pub ppid: Option<Pid>,
    pub pgid: Option<Pid>,
    pub sid: Option<Pid>,
    pub start: StartTime,
    pub state: RunState,
}

impl ProcInfo {
    pub fn is_live(&self) -> bool {
        self.state == RunState::Live
    }
}

/// The processes below `root` in a snapshot (not `root` itself), found by following
/// parent links. Works for any snapshot; the supervisor passes its own PID, and as a
/// child subreaper its tree includes everything that double-forked away.
pub fn descendants(snapshot: &[ProcInfo], root: Pid) -> Vec<ProcInfo> {
    let mut found: Vec<ProcInfo> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for info in snapshot.iter().filter(|p| p.ppid == Some(parent)) {
            if info.pid != root && !found.iter().any(|f| f.pid == info.pid) {
                found.push(*info);
                frontier.push(info.pid);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: i32, ppid: i32) -> ProcInfo {
        ProcInfo {
            pid: Pid(pid),
            ppid: Pid::new(ppid),
            pgid: Pid::new(pid),
            sid: Pid::new(pid),
            start: StartTime(pid as u64),
            state: RunState::Live,
        }
    }

    #[test]
    fn kill_targets_never_reach_init_or_everyone() {
        assert_eq!(Target::Process(Pid(1)).for_kill(), None);
        assert_eq!(Target::ProcessGroup(Pid(1)).for_kill(), None);
        assert_eq!(Target::Process(Pid(42)).for_kill(), Some(42));
        assert_eq!(Target::ProcessGroup(Pid(42)).for_kill(), Some(-42));
        assert_eq!(Pid::new(0), None);
        assert_eq!(Pid::new(-1), None);
    }

    #[test]
    fn descendants_follow_parent_links_only() {
        let snap = [
            info(10, 1),
            info(11, 10),
            info(12, 11),
            info(13, 10),
            info(20, 1),
            info(21, 20),
        ];
        let mut pids: Vec<i32> = descendants(&snap, Pid(10))
            .iter()
            .map(|p| p.pid.get())
            .collect();
        pids.sort();
        assert_eq!(pids, [11, 12, 13]);
    }

    #[test]
    fn signals_are_named_as_posix_names_them() {
        assert_eq!(Signal::Term.name(), "SIGTERM");
        assert_eq!(Signal::Winch.to_string(), "SIGWINCH");
    }

    #[test]
    fn pid_parsing_rejects_non_pids() {
        assert!("0".parse::<Pid>().is_err());
        assert!("-5".parse::<Pid>().is_err());
        assert!("abc".parse::<Pid>().is_err());
        assert_eq!("77".parse::<Pid>(), Ok(Pid(77)));
    }
}
