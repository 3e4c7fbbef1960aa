//! Linux helpers for the tests and `src/bin/ocwrap-fixture.rs` only: decoy processes,
//! a thread that ends alone, and what `/proc` says about pending signals and wake-ups.
//! No product module uses them.

use std::fs;
use std::io;

use crate::process::Pid;

/// Test fixture: forks `count` idle children, standing for the unrelated processes
/// of a busy host. Each blocks every signal it can and sleeps until its parent dies
/// (`PR_SET_PDEATHSIG` SIGKILL), so a signal anyone sends it stays pending, where
/// [`pending_signals`] shows it. Returns their PIDs; stops at the first failed fork.
pub fn fork_idle_children(count: usize) -> io::Result<Vec<Pid>> {
    let parent = Pid::current().get();
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        // SAFETY: the child only runs `idle_until_parent_dies`, which makes
        // async-signal-safe calls and never returns into Rust code, so forking a
        // process that may have other threads is sound.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => return Err(io::Error::last_os_error()),
            0 => idle_until_parent_dies(parent),
            pid => children.extend(Pid::new(pid)),
        }
    }
    Ok(children)
}

/// The body of a child of [`fork_idle_children`]; never returns.
fn idle_until_parent_dies(parent: libc::pid_t) -> ! {
    // SAFETY: only async-signal-safe calls (we may have been forked from a process
    // with other threads); `set` lives on this stack frame for the calls using it.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        if libc::getppid() != parent {
            libc::_exit(1);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        loop {
            libc::pause();
        }
    }
}

/// Test fixture: ends the calling thread and nothing else (the raw `exit` system
/// call, not `exit_group`). Called on the main thread while others run, it leaves
/// a process whose thread-group leader is a zombie and which is alive all the same.
pub fn exit_this_thread() -> ! {
    // SAFETY: SYS_exit ends only the calling thread and never returns; no Rust
    // frame is unwound, and the other threads own everything they use.
    unsafe {
        libc::syscall(libc::SYS_exit, 0);
    }
    unreachable!("the exit system call returned")
}

/// The signals pending for `pid` (its own and its thread group's, from
/// `/proc/PID/status`) as a bit set, bit n-1 for signal n; `None` when it is gone.
pub fn pending_signals(pid: Pid) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    Some(mask("SigPnd:")? | mask("ShdPnd:")?)
}

/// Voluntary context switches of every thread of `pid` (from
/// `/proc/PID/task/*/status`): how often it went to sleep, i.e. woke up.
pub fn voluntary_context_switches(pid: Pid) -> io::Result<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = fs::read_to_string(task?.path().join("status"))?;
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

/// Tests: whether pinning `pid` (`PidFd::open`) failed because no process has the
/// PID. `ESRCH`; or `EINVAL` while `/proc/PID` is absent: an older kernel (6.1,
/// which the arm64 VM boots; a newer one says `ESRCH`) says `EINVAL` for a PID
/// that no process has but a process group or session still does (its leader
/// reaped, members left), as it does for a thread's ID, which has a `/proc/PID`
/// of its own.
pub fn is_no_such_process(pid: Pid, error: &io::Error) -> bool {
    match error.raw_os_error() {
        Some(libc::ESRCH) => true,
        Some(libc::EINVAL) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        _ => false,
    }
}
