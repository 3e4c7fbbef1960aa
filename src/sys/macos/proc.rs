//! Who a process is, on macOS: `proc_pidinfo(PROC_PIDTBSDINFO)` (parent, group,
//! start time, state), `getsid`, `proc_listallpids` and `proc_listchildpids`; its
//! names, argv and environment from `proc_pidpath` and `sysctl(KERN_PROCARGS2)` (read
//! by `procargs.rs`). Type-checked only. See `docs/DESIGN.md`, section "Platform seam".

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::{mem, ptr};

use super::procargs::ProcArgs;
use crate::process::{Pid, ProcInfo, RunState, StartTime};

/// `pbi_flags` bit for a process that has begun `exit()` (`sys/proc_info.h`; not in
/// the `libc` crate). XNU sets it before it posts `NOTE_EXIT` and well before the
/// process becomes a zombie, so reading it as dead keeps [`proc_info`] in step with
/// a [`PidFd`](super::PidFd) that just became readable.
pub(super) const PROC_FLAG_INEXIT: u32 = 4;

/// The kernel's `proc_bsdinfo` for `pid`, zombies included (a non-zero `arg` asks
/// XNU to look among zombies too), or `None` when there is no such process or it
/// belongs to another user and we are not root.
pub(super) fn bsd_info(pid: Pid) -> Option<libc::proc_bsdinfo> {
    // SAFETY: proc_bsdinfo is plain data; zeroed is a valid value to be overwritten.
    let mut info: libc::proc_bsdinfo = unsafe { mem::zeroed() };
    let size = mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: proc_pidinfo writes at most `size` bytes into `info`, which lives for
    // the call.
    let written = unsafe {
        libc::proc_pidinfo(
            pid.get(),
            libc::PROC_PIDTBSDINFO,
            1,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        )
    };
    (written == size && Pid::from_u32(info.pbi_pid) == Some(pid)).then_some(info)
}

/// One process, or `None` when there is no such process (or it is not ours to see:
/// see the module header).
pub fn proc_info(pid: Pid) -> Option<ProcInfo> {
    let info = bsd_info(pid)?;
    // A process in exit() can no longer act, and its NOTE_EXIT may already have
    // fired: it counts as dead, like Linux's zombies.
    let dead = info.pbi_status == libc::SZOMB || info.pbi_flags & PROC_FLAG_INEXIT != 0;
    // SAFETY: getsid takes a PID and touches no memory; -1 when it cannot answer.
    let sid = unsafe { libc::getsid(pid.get()) };
    Some(ProcInfo {
        pid,
        ppid: Pid::from_u32(info.pbi_ppid),
        pgid: Pid::from_u32(info.pbi_pgid),
        sid: Pid::new(sid),
        start: StartTime(
            info.pbi_start_tvsec
                .saturating_mul(1_000_000)
                .saturating_add(info.pbi_start_tvusec),
        ),
        state: if dead { RunState::Dead } else { RunState::Live },
    })
}

/// One process, as [`proc_info`]: `Ok(None)` when it cannot be seen. macOS's
/// `proc_pidinfo` needs no descriptor, so a failed look is not told apart from a
/// missing process here (designed only; nothing ran on a Mac).
pub fn proc_lookup(pid: Pid) -> io::Result<Option<ProcInfo>> {
    Ok(proc_info(pid))
}

/// Every PID the kernel lists right now, from `proc_listallpids`. Asking first for
/// the count and then for the list races with forks, so the buffer has headroom and
/// a full buffer is asked again with a bigger one.
fn all_pids() -> Vec<libc::pid_t> {
    // SAFETY: a null buffer of size 0 asks only how many PIDs there are.
    let count = unsafe { libc::proc_listallpids(ptr::null_mut(), 0) };
    let mut capacity = usize::try_from(count).unwrap_or(0) + 64;
    for _ in 0..4 {
        let mut pids: Vec<libc::pid_t> = vec![0; capacity];
        let Ok(bytes) = libc::c_int::try_from(capacity * mem::size_of::<libc::pid_t>()) else {
            return Vec::new();
        };
        // SAFETY: proc_listallpids writes at most `bytes` bytes, the size of `pids`.
        let n = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
        let Ok(n) = usize::try_from(n) else {
            return Vec::new();
        };
        if n < capacity {
            pids.truncate(n);
            return pids;
        }
        capacity *= 2;
    }
    Vec::new()
}

/// Every process we can see right now (a snapshot: processes come and go while it is
/// taken, and callers re-check what they act on).
pub fn all_processes() -> Vec<ProcInfo> {
    all_pids()
        .into_iter()
        .filter_map(Pid::new)
        .filter_map(proc_info)
        .collect()
}

/// Whether the kernel lists a process's children, which the walk down the server's
/// tree reads: always, on macOS (`proc_listchildpids`).
pub fn children_listed() -> bool {
    true
}

/// The children of `pid`, zombies included (XNU's `proc_listpids` walks its zombie
/// list after the live one), from `proc_listchildpids`. Empty when `pid` is gone.
///
/// The kernel takes the list under its process-list lock, so one answer is
/// consistent; a full buffer may have cut the list short and is asked again with a
/// bigger one. Callers still look twice (see `crate::tree`), as on Linux.
pub fn children(pid: Pid) -> Vec<Pid> {
    let mut capacity = 64;
    for _ in 0..8 {
        let mut pids: Vec<libc::pid_t> = vec![0; capacity];
        let Ok(bytes) = libc::c_int::try_from(capacity * mem::size_of::<libc::pid_t>()) else {
            return Vec::new();
        };
        // SAFETY: proc_listchildpids writes at most `bytes` bytes, the size of
        // `pids`, and returns how many PIDs it wrote (-1 on error).
        let n = unsafe { libc::proc_listchildpids(pid.get(), pids.as_mut_ptr().cast(), bytes) };
        let Ok(n) = usize::try_from(n) else {
            return Vec::new();
        };
        if n < capacity {
            return pids[..n].iter().copied().filter_map(Pid::new).collect();
        }
        capacity *= 2;
    }
    Vec::new()
}

/// The raw `KERN_PROCARGS2` bytes of `pid` (see `procargs.rs` for their layout), or
/// `None` for a zombie, another user's process, or no process.
fn proc_args(pid: Pid) -> Option<Vec<u8>> {
    let mut argmax: libc::c_int = 0;
    let mut size = mem::size_of::<libc::c_int>();
    let mut mib = [libc::CTL_KERN, libc::KERN_ARGMAX];
    // SAFETY: sysctl writes at most `size` bytes (one int) into `argmax`, which lives
    // for the call; nothing is set (null new value).
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as libc::c_uint,
            (&mut argmax as *mut libc::c_int).cast(),
            &mut size,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    let mut buf = vec![0u8; usize::try_from(argmax).ok()?];
    let mut size = buf.len();
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid.get()];
    // SAFETY: sysctl writes at most `size` bytes into `buf` (its length) and stores
    // the length written in `size`; nothing is set.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as libc::c_uint,
            buf.as_mut_ptr().cast(),
            &mut size,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    buf.truncate(size);
    Some(buf)
}

/// The executable of `pid` (`proc_pidpath`), which any user may ask for.
fn executable_path(pid: Pid) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
    // SAFETY: proc_pidpath writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::proc_pidpath(pid.get(), buf.as_mut_ptr().cast(), buf.len() as u32) };
    let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
    buf.truncate(n);
    Some(buf)
}

fn basename(path: &[u8]) -> Option<String> {
    Path::new(OsStr::from_bytes(path))
        .file_name()
        .map(|base| base.to_string_lossy().into_owned())
}

/// The names a process is known by: its executable's basename and its `argv[0]`'s
/// basename (either may be unreadable, e.g. for another user's process).
pub fn process_names(pid: Pid) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(base) = executable_path(pid).as_deref().and_then(basename) {
        names.push(base);
    }
    let args = proc_args(pid);
    let argv0 = args
        .as_deref()
        .and_then(ProcArgs::parse)
        .and_then(|parsed| parsed.argv.first().copied());
    if let Some(base) = argv0.and_then(basename) {
        names.push(base);
    }
    names
}

/// Whether the environment of `pid` as exec laid it out (`KERN_PROCARGS2`, where it
/// follows argv) holds exactly the entry `entry` (`KEY=value`). Unreadable (another
/// user's process, a zombie) reads as no, so nothing is signalled on a guess.
pub fn environ_has(pid: Pid, entry: &str) -> bool {
    proc_args(pid).is_some_and(|buf| {
        ProcArgs::parse(&buf).is_some_and(|args| args.env.contains(&entry.as_bytes()))
    })
}

/// Whether `pid` is a kernel thread, which never exits on a user's account. Always
/// false on macOS: the kernel's threads all belong to `kernel_task`, PID 0, which
/// is no [`Pid`]; every process with a PID of its own runs user code and can exit.
pub fn is_kernel_thread(_pid: Pid) -> bool {
    false
}
