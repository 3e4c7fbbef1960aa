//! Spawning, on macOS, which has neither a child subreaper nor a parent-death
//! signal: what holds instead, and the design of the guard process that would close
//! the gap. The spawn itself is `sys/unix/spawn.rs`. Type-checked only. See
//! `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::process::Pid;

/// macOS has no child subreaper: orphans always reparent to launchd. This returns
/// `Ok` so that the supervisor runs, but the guarantee the Linux version gives does
/// not hold: a descendant that `setsid`s and double-forks away leaves ocwrap's tree
/// (`process::descendants` follows parent links) and is not torn down with it.
/// Teardown still reaches the server's whole process group, and the tree marker in
/// its environment lets `gc` and the sweep find it after ocwrap is gone.
pub fn become_child_subreaper() -> io::Result<()> {
    Ok(())
}

/// Arranges for the spawned command to start with the signal dispositions a fresh
/// program expects, and refuses to exec it if its supervisor is already gone.
///
/// macOS has no parent-death signal, so only the check half of Linux's guarantee
/// holds: between fork and exec the child compares `getppid()` with `supervisor`
/// (our PID saved before the fork) and refuses to run if it was already reparented.
/// If ocwrap is SIGKILLed later, the server keeps running until the next ocwrap
/// command sweeps the dead registration (or `gc` runs).
///
/// Designed, not built (it needs portable code): a guard process closes that gap.
/// Before spawning the server, ocwrap would start a hidden `ocwrap __guard` whose
/// typed payload is ocwrap's identity (PID + start time, from which the tree marker
/// follows), sent on a pipe whose write end only ocwrap holds (`O_CLOEXEC`, so the
/// server never inherits it). The guard runs in its own session, so a terminal's
/// SIGINT/SIGHUP to ocwrap's group does not reach it; its environment lacks
/// `OCWRAP_TREE`, so no sweep takes it for a leftover; it holds no lock, record or
/// socket, says "armed" on a second pipe, and blocks in `read`. The server is spawned
/// only after "armed". When ocwrap dies for any reason, SIGKILL included, the kernel
/// closes its descriptors and the guard reads EOF at once (no polling, and no PID to
/// be recycled: the pipe names ocwrap's open files, not a number). The guard then
/// runs the sweep's leftover teardown for that identity, which signals only live
/// processes that carry the exact marker and started no earlier than ocwrap, so it
/// cannot touch a process ocwrap did not start. After a clean exit it finds nothing.
/// Escapees that kept the marker are found too, so the same guard would also end
/// Linux's grandchildren after ocwrap's SIGKILL (`PR_SET_PDEATHSIG` reaches only the
/// direct child). Not covered: a guard killed together with ocwrap (the next
/// command's sweep remains the backstop), and a process that cleared its environment.
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
