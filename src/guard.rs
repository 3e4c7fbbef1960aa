//! The guard: a small process, `ocwrap __guard`, that a supervisor starts before
//! its server where nothing else ends the tree when the supervisor is killed
//! (macOS, which has no parent-death signal; on Linux with `--guard`), and that
//! tears the tree down the moment the supervisor is gone (docs/DESIGN.md, "The
//! guard", for the races).
//!
//! The two are linked by a socket pair: the guard's end is its descriptor 3,
//! the supervisor's end is close-on-exec, so no server ever holds a copy. The
//! guard runs in a session of its own, so no signal to the supervisor's or the
//! server's process group reaches it, and it carries no tree marker of its own,
//! so no sweep takes it for a leftover. It says `armed` once it watches, and the
//! server is started only after that. Then each side waits on the other:
//! - the supervisor dies (SIGKILL included): the kernel closes its end, the
//!   guard reads EOF at once and tears down every process that carries the
//!   supervisor's tree marker and started after it (no PID is trusted: the marker
//!   and the start time are checked before each signal). It then waits for the
//!   supervisor's exit to be complete (its pidfd; on macOS a kqueue with
//!   `EVFILT_PROC`/`NOTE_EXIT`), so that its lock is free, and sweeps the state
//!   dir, which removes the dead registration (and a leftover cgroup);
//! - the guard dies: the supervisor reads EOF on its end and tears down (stop
//!   cause `guard_gone`), since nothing would end the tree if it were killed next;
//! - the supervisor ends by itself: it says `done` after its tree is gone, and the
//!   guard exits without looking for anything.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::diag;
use crate::identity::SupervisorId;
use crate::process::Pid;
use crate::state::{StateDir, sweep};
use crate::sys::{self, AsWaitable, Detached, Guarding, HandoffChannel, PidFd, Waitable};

/// The hidden subcommand that runs a guard.
pub const SUBCOMMAND: &str = "__guard";

/// How long a supervisor waits for its guard to say `armed`.
const ARM_WAIT: Duration = Duration::from_secs(5);

/// How long a guard waits, after the tree is down, for its supervisor's exit to
/// be complete before it sweeps (the sweep of the next command is the backstop).
const EXIT_WAIT: Duration = Duration::from_secs(2);

const ARMED: &[u8] = b"armed\n";
const DONE: &[u8] = b"done\n";

/// The longest line either side reads.
const MAX_LINE: u64 = 64;

/// Whether a supervisor with `--guard` set to `requested` starts a guard here.
pub fn wanted(requested: bool) -> bool {
    match sys::GUARDING {
        Guarding::Always => true,
        Guarding::OnRequest => requested,
        Guarding::NotNeeded => false,
    }
}

/// A supervisor's guard, armed: the supervisor's side of the link.
#[derive(Debug)]
pub struct Guard {
    child: Detached,
    pid: Pid,
    link: HandoffChannel,
}

impl Guard {
    /// Starts the guard of supervisor `me` (this process), whose state dir is
    /// `state`, and waits until it says it is armed.
    pub fn start(me: SupervisorId, state: &Path) -> io::Result<Guard> {
        let exe = std::env::current_exe()?;
        let (ours, theirs) = HandoffChannel::pair()?;
        let mut command = Command::new(exe);
        // Its command line is all it needs: no OCWRAP_* option of ours may reach
        // it (a bad one would fail its parse). The tree marker it may have
        // inherited from an outer ocwrap stays, so that tree still finds it.
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("OCWRAP_") && key_text != crate::identity::TreeMarker::KEY {
                command.env_remove(key);
            }
        }
        command
            .arg(SUBCOMMAND)
            .arg(me.to_string())
            .arg(state)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut child = sys::spawn_detached(command, theirs)?;
        let Some(pid) = child.pid() else {
            child.kill();
            return Err(io::Error::other("it has no PID"));
        };
        let mut guard = Guard {
            child,
            pid,
            link: ours,
        };
        match guard
            .link
            .read_line_until(MAX_LINE, Instant::now() + ARM_WAIT)
        {
            Ok(line) if line == ARMED => Ok(guard),
            outcome => {
                guard.child.kill();
                Err(match outcome {
                    Err(e) => e,
                    Ok(line) if line.is_empty() => {
                        io::Error::other("it exited before it was armed (see its message above)")
                    }
                    Ok(_) => io::Error::other("it answered something other than armed"),
                })
            }
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Readable once the guard has gone (or, never, said something).
    pub fn waitable(&self) -> Waitable<'_> {
        self.link.waitable()
    }

    /// After [`Guard::waitable`] woke: whether the guard has gone (its end is
    /// closed). It is not reaped: a zombie until the supervisor exits, its PID
    /// cannot be recycled by a process of the tree, which the tree's walk would
    /// then leave out.
    pub fn has_gone(&mut self) -> bool {
        // Readable now, so the read returns at once: the end (empty), or bytes
        // a guard never sends after `armed`, which are dropped.
        match self
            .link
            .read_line_until(MAX_LINE, Instant::now() + Duration::from_millis(100))
        {
            Ok(line) => line.is_empty(),
            Err(_) => false,
        }
    }

    /// The tree is gone: tells the guard so, and lets it go. It exits at once;
    /// the supervisor exits next, which hands the guard to init to be reaped.
    pub fn dismiss(mut self) {
        let _ = self.link.write_line(DONE);
    }
}

/// Runs `ocwrap __guard <supervisor> <state dir>` (see the module header) and
/// returns its exit code: 0 once its work is done, 2 when it could not arm.
pub fn run(args: &[OsString]) -> i32 {
    let (Some(id), Some(state), 2) = (
        args.first()
            .and_then(|a| a.to_str())
            .and_then(|a| a.parse::<SupervisorId>().ok()),
        args.get(1).map(PathBuf::from),
        args.len(),
    ) else {
        diag::say(
            "__guard is started by an ocwrap supervisor, with its <pid>.<start> and state dir",
        );
        return 2;
    };
    match arm(id) {
        Ok((link, supervisor)) => {
            // From here on it only waits: give back the code start-up mapped.
            sys::release_startup_pages();
            watch(id, &state, link, &supervisor)
        }
        Err(e) => {
            diag::say(format_args!("the guard of supervisor {id} cannot arm: {e}"));
            2
        }
    }
}

/// Takes the link, pins the supervisor, and says `armed`: only for a supervisor
/// that runs, with the start time it gave.
fn arm(id: SupervisorId) -> io::Result<(HandoffChannel, PidFd)> {
    let mut link = HandoffChannel::take()?;
    let supervisor = PidFd::open(id.pid)?;
    // Pinned first, checked after: a PID recycled before the pin shows another
    // start time here.
    if !id.is_running() {
        return Err(io::Error::other("no such supervisor runs"));
    }
    link.write_line(ARMED)?;
    Ok((link, supervisor))
}

/// Waits for the supervisor's end, then acts on how it ended.
fn watch(id: SupervisorId, state: &Path, mut link: HandoffChannel, supervisor: &PidFd) -> i32 {
    loop {
        match sys::poll_readable(&[link.waitable(), supervisor.waitable()], None) {
            Ok(woke) if woke.iter().any(|&w| w) => {}
            // A signal interrupted the wait.
            Ok(_) => continue,
            Err(e) => {
                // Only bad arguments or lack of memory: a bounded pause keeps
                // it watching.
                diag::say(format_args!("the guard's poll failed: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        match link.read_line_until(MAX_LINE, Instant::now() + Duration::from_millis(100)) {
            Ok(line) if line == DONE => return 0,
            // The supervisor's end closed (or its process ended): it was killed.
            Ok(line) if line.is_empty() => break,
            Err(_) if supervisor_exited(supervisor, Duration::ZERO) => break,
            // Nothing else is ever sent.
            _ => continue,
        }
    }
    let killed = sweep::tear_down_marked(id);
    diag::say(format_args!(
        "supervisor {id} died; its guard tore down {} process(es) of its tree",
        killed.len()
    ));
    if supervisor_exited(supervisor, EXIT_WAIT)
        && let Ok(state) = StateDir::open(Some(state))
    {
        sweep::sweep(&state);
    }
    // Once more: a process the first scan caught between fork and exec, or
    // whose environment could not be read yet, shows its marker by now.
    let late = sweep::tear_down_marked(id);
    if !late.is_empty() {
        diag::say(format_args!(
            "supervisor {id}: its guard tore down {} more process(es)",
            late.len()
        ));
    }
    0
}

/// Whether the supervisor's exit is complete (its pidfd is readable), waiting at
/// most `wait`.
fn supervisor_exited(supervisor: &PidFd, wait: Duration) -> bool {
    sys::poll_readable(&[supervisor.waitable()], Some(wait)).is_ok_and(|w| w[0])
}
