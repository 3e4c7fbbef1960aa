//! Spawning, on Linux: the supervisor becomes a child subreaper, and the server is
//! set up between fork and exec to die with it (`PR_SET_PDEATHSIG` and a parent
//! check). The spawn itself is `sys/unix/spawn.rs`; see `docs/DESIGN.md`, section
//! "Platform seam".

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::process::Pid;

/// Where a supervisor starts a guard (`crate::guard`): with `--guard` only on
/// Linux, which has a parent-death signal for the server and a child subreaper
/// for the rest. With it, the escapees of group containment end too when ocwrap
/// is SIGKILLed.
pub const GUARDING: crate::sys::Guarding = crate::sys::Guarding::OnRequest;

/// Makes this process a child subreaper: orphans below it (a server's grandchildren,
/// or a descendant that `setsid`+double-forked out of the group) reparent to it
/// instead of to init, so it can find them, tear them down and reap them. `true`:
/// there is one.
pub fn become_child_subreaper() -> io::Result<bool> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument and
    // touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(true)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Arranges for the spawned command to die with this process and to start with the
/// signal dispositions a fresh program expects.
///
/// Between fork and exec the child asks for SIGKILL on its parent's death, then
/// compares `getppid()` with `supervisor` (our PID saved before the fork): if we died
/// before the prctl took effect, the child was already reparented and the death
/// signal will never come, so it refuses to exec. Comparing with 1 would be wrong
/// under a subreaper or in a PID namespace. SIGTTIN/SIGTTOU are reset because
/// ignored dispositions survive exec and the supervisor ignores both.
pub(in crate::sys) fn die_with_supervisor(command: &mut Command, supervisor: Pid) {
    let expected_parent = supervisor.get();
    let hook = move || -> io::Result<()> {
        // SAFETY: prctl, getppid and signal are async-signal-safe; between fork and
        // exec we touch no allocator, no lock and no memory shared with the parent.
        unsafe {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
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
