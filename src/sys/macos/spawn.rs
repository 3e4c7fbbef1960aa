//! Spawning, on macOS, which has neither a child subreaper nor a parent-death
//! signal: what holds instead (the guard, `crate::guard`, and the tree marker).
//! The spawn itself is `sys/unix/spawn.rs`. Type-checked only. See
//! `docs/DESIGN.md`, sections "Platform seam" and "The guard".

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::process::Pid;

/// Where a supervisor starts a guard (`crate::guard`): always on macOS, which
/// has no parent-death signal.
pub const GUARDING: crate::sys::Guarding = crate::sys::Guarding::Always;

/// macOS has no child subreaper: orphans always reparent to launchd, so this says
/// `false` and the supervisor runs without one. A descendant that `setsid`s and
/// double-forks away leaves the walk down from ocwrap; teardown finds it by the
/// tree marker in its environment instead (`crate::tree`, at teardown's known
/// moments), as the guard, the sweep and `gc` do after ocwrap is gone.
pub fn become_child_subreaper() -> io::Result<bool> {
    Ok(false)
}

/// Arranges for the spawned command to start with the signal dispositions a fresh
/// program expects, and refuses to exec it if its supervisor is already gone.
///
/// macOS has no parent-death signal, so only the check half of Linux's guarantee
/// holds here: between fork and exec the child compares `getppid()` with
/// `supervisor` (our PID saved before the fork) and refuses to run if it was
/// already reparented. What ends the server when ocwrap is SIGKILLed later is the
/// guard (`crate::guard`), which every supervisor on macOS starts before its
/// server.
pub(in crate::sys) fn die_with_supervisor(command: &mut Command, supervisor: Pid) {
    let expected_parent = supervisor.get();
    let hook = move || -> io::Result<()> {
        // SAFETY: getppid and signal are async-signal-safe; between fork and exec we
        // touch no allocator, no lock and no memory shared with the parent.
        unsafe {
            if libc::getppid() != expected_parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            libc::signal(libc::SIGTTIN, libc::SIG_DFL);
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
        }
        Ok(())
    };
    // SAFETY: the hook above only makes async-signal-safe calls (see there).
    unsafe {
        command.pre_exec(hook);
    }
}
