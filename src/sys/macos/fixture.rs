//! macOS helpers for the tests and `src/bin/ocwrap-fixture.rs` only: decoy processes,
//! a thread that ends alone, and stand-ins for what Linux's `/proc` says about pending
//! signals and wake-ups. No product module uses them. Type-checked only.

use std::io;
use std::{mem, ptr};

use super::proc::{PROC_FLAG_INEXIT, bsd_info};
use crate::process::Pid;

/// Signals are numbered 1 to 31 on macOS (`__DARWIN_NSIG` in `sys/signal.h`; the
/// `libc` crate has no `NSIG` for Apple targets).
const NSIG: libc::c_int = 32;

/// Test fixture: forks `count` idle children, standing for the unrelated processes
/// of a busy host. Returns their PIDs; stops at the first failed fork.
///
/// macOS cannot show one process the signals pending for another (see
/// [`pending_signals`]), so these decoys do not block signals as Linux's do: every
/// signal that can be caught ends the decoy at once (`_exit(128 + signal)`), so a
/// decoy that anyone signalled reads as gone; SIGKILL ends it anyway, and SIGSTOP,
/// which cannot be caught, shows in [`pending_signals`]. With no parent-death
/// signal, each decoy waits on a kqueue for its parent's `NOTE_EXIT` and then exits.
pub fn fork_idle_children(count: usize) -> io::Result<Vec<Pid>> {
    let parent = Pid::current().get();
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        // SAFETY: the child only runs `idle_until_parent_dies`, which makes plain
        // system calls and never returns into Rust code, so forking a process that
        // may have other threads is sound.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => return Err(io::Error::last_os_error()),
            0 => idle_until_parent_dies(parent),
            pid => children.extend(Pid::new(pid)),
        }
    }
    Ok(children)
}

/// A decoy's handler for every catchable signal: it ends the decoy, which is how
/// the fixture sees that it was signalled.
extern "C" fn exit_on_signal(signal: libc::c_int) {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(128 + signal) }
}

/// The body of a child of [`fork_idle_children`]; never returns.
fn idle_until_parent_dies(parent: libc::pid_t) -> ! {
    // SAFETY: we may have been forked from a process with other threads, so only
    // calls that take no lock of the C library are made: sigfillset, sigaction and
    // _exit are async-signal-safe, and kqueue, kevent and getppid are bare system
    // calls. `action`, `change` and `event` live on this stack frame for the calls
    // using them, and the handler only calls _exit.
    unsafe {
        let mut action: libc::sigaction = mem::zeroed();
        action.sa_sigaction = exit_on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigfillset(&mut action.sa_mask);
        for signal in 1..NSIG {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::sigaction(signal, &action, ptr::null_mut());
            }
        }
        let kq = libc::kqueue();
        if kq < 0 {
            libc::_exit(1);
        }
        let change = libc::kevent {
            ident: parent as usize,
            filter: libc::EVFILT_PROC,
            flags: libc::EV_ADD,
            fflags: libc::NOTE_EXIT,
            data: 0,
            udata: ptr::null_mut(),
        };
        // Registered first, then checked: a parent that died before the
        // registration is no longer our parent, and one that dies after it posts
        // the event.
        if libc::kevent(kq, &change, 1, ptr::null_mut(), 0, ptr::null()) == -1
            || libc::getppid() != parent
        {
            libc::_exit(1);
        }
        let mut event: libc::kevent = mem::zeroed();
        loop {
            if libc::kevent(kq, ptr::null(), 0, &mut event, 1, ptr::null()) == 1 {
                libc::_exit(0);
            }
        }
    }
}

/// Test fixture: ends the calling thread and nothing else (`pthread_exit`, which
/// on macOS runs cleanup handlers and unwinds no frames).
pub fn exit_this_thread() -> ! {
    // SAFETY: pthread_exit ends only the calling thread and never returns; the
    // other threads own everything they use.
    unsafe { libc::pthread_exit(std::ptr::null_mut()) }
}

/// The signals pending for `pid` as a bit set, bit n-1 for signal n; `None` when
/// it is gone (or in `exit()`, or a zombie).
///
/// A stand-in, which only the decoys of [`fork_idle_children`] make meaningful:
/// macOS tells no process what is pending for another (`sysctl(KERN_PROC)` fills
/// `p_siglist` with 0, "no longer relevant" in XNU), so the only signal reported is
/// SIGSTOP, for a stopped process. A decoy that got any other signal has exited and
/// reads as gone.
pub fn pending_signals(pid: Pid) -> Option<u64> {
    let info = bsd_info(pid)?;
    if info.pbi_status == libc::SZOMB || info.pbi_flags & PROC_FLAG_INEXIT != 0 {
        return None;
    }
    Some(if info.pbi_status == libc::SSTOP {
        1 << (libc::SIGSTOP - 1)
    } else {
        0
    })
}

/// Context switches of every thread of `pid`, from `proc_pidinfo(PROC_PIDTASKINFO)`:
/// how often it went to sleep, i.e. woke up. Best effort: macOS counts voluntary and
/// involuntary switches together (`pti_csw`), so this over-counts, which can only
/// make an "idle means no wake-ups" check stricter.
pub fn voluntary_context_switches(pid: Pid) -> io::Result<u64> {
    // SAFETY: proc_taskinfo is plain data; zeroed is a valid value to be overwritten.
    let mut info: libc::proc_taskinfo = unsafe { mem::zeroed() };
    let size = mem::size_of::<libc::proc_taskinfo>() as libc::c_int;
    // SAFETY: proc_pidinfo writes at most `size` bytes into `info`, which lives for
    // the call.
    let written = unsafe {
        libc::proc_pidinfo(
            pid.get(),
            libc::PROC_PIDTASKINFO,
            0,
            (&mut info as *mut libc::proc_taskinfo).cast(),
            size,
        )
    };
    if written <= 0 {
        return Err(io::Error::last_os_error());
    }
    if written != size {
        return Err(io::Error::other(
            "proc_pidinfo returned a short proc_taskinfo",
        ));
    }
    u64::try_from(info.pti_csw).map_err(|_| io::Error::other("negative context switch count"))
}

/// Tests: whether pinning `pid` (`PidFd::open`) failed because no process has the
/// PID (`ESRCH`).
pub fn is_no_such_process(_pid: Pid, error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::ESRCH)
}
