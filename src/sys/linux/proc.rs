//! Who a process is, on Linux: its `/proc/PID/stat` line (parent, group, session,
//! start time, state), the names it is known by, its initial environment, its
//! children, and whether it is a kernel thread. See `docs/DESIGN.md`, section
//! "Platform seam".

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::process::{Pid, ProcInfo, RunState, StartTime};

/// One process from `/proc/PID/stat`, or `None` when there is no such process.
pub fn proc_info(pid: Pid) -> Option<ProcInfo> {
    proc_lookup(pid).ok().flatten()
}

/// One process: `Ok(None)` only when there is no such process (its `/proc` entry
/// is missing or empty); an `Err` when we could not look (out of descriptors or
/// memory, say). A caller that would end a lease on "gone" must not take a failed
/// look for one.
pub fn proc_lookup(pid: Pid) -> io::Result<Option<ProcInfo>> {
    // A stat line is well under 1 KiB; one read, no size query (tree walks call
    // this once per process).
    let mut text = [0u8; 1024];
    let mut file = match fs::File::open(format!("/proc/{pid}/stat")) {
        Ok(file) => file,
        Err(e) if is_no_such_process(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    match io::Read::read(&mut file, &mut text) {
        Ok(n) => Ok(parse_stat(pid, &text[..n])),
        // The process was released between the open and the read.
        Err(e) if is_no_such_process(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a `/proc/PID` access failed because the process does not exist.
fn is_no_such_process(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ESRCH) | Some(libc::ENOTDIR)
    )
}

/// Parses `/proc/PID/stat`. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat(pid: Pid, text: &[u8]) -> Option<ProcInfo> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    let number = |n: usize| fields.get(n - 3)?.parse::<i64>().ok();
    // The state letter is the thread-group leader's. A leader that ended its own
    // thread (`pthread_exit`, or the raw `exit` system call) shows `Z` while the
    // rest of the process runs on; the kernel keeps the zombie leader counted in
    // the process's threads (field 20) until the last one exits, so a count above
    // one means a live process.
    let state = match fields.first()? {
        &"Z" | &"X" | &"x" if number(20).is_none_or(|threads| threads <= 1) => RunState::Dead,
        _ => RunState::Live,
    };
    Some(ProcInfo {
        pid,
        ppid: Pid::new(number(4)? as i32),
        pgid: Pid::new(number(5)? as i32),
        sid: Pid::new(number(6)? as i32),
        start: StartTime(u64::try_from(number(22)?).ok()?),
        state,
    })
}

/// Every process visible in `/proc` right now (a snapshot: processes come and go
/// while it is taken, and callers re-check what they act on).
pub fn all_processes() -> Vec<ProcInfo> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(Pid::new)
        .filter_map(proc_info)
        .collect()
}

/// Whether this kernel lists children in `/proc/PID/task/TID/children`
/// (`CONFIG_PROC_CHILDREN`), which the walk down the server's tree reads.
pub fn children_listed() -> bool {
    let me = Pid::current();
    Path::new(&format!("/proc/{me}/task/{me}/children")).exists()
}

/// The children of `pid`, zombies included, from `/proc/PID/task/TID/children` of
/// every thread: a child belongs to the thread that forked it, and an orphan to
/// whichever thread of its subreaper the kernel picked. Empty when `pid` is gone.
///
/// The kernel builds that file a page at a time and drops its locks in between, so
/// a child forked or reaped while it is read can be missed: callers that need the
/// whole tree read it again until two readings agree (see `crate::tree`).
pub fn children(pid: Pid) -> Vec<Pid> {
    let task_dir = format!("/proc/{pid}/task");
    // A task directory links one entry per thread plus `.` and `..`: a process
    // with one thread (most of them) needs no directory listing.
    let tasks: Vec<std::path::PathBuf> = match fs::metadata(&task_dir) {
        Err(_) => return Vec::new(),
        Ok(meta) if std::os::unix::fs::MetadataExt::nlink(&meta) <= 3 => {
            vec![Path::new(&task_dir).join(pid.to_string())]
        }
        Ok(_) => match fs::read_dir(&task_dir) {
            Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
            Err(_) => return Vec::new(),
        },
    };
    let mut found = Vec::new();
    let mut text = Vec::new();
    for task in tasks {
        text.clear();
        let read = fs::File::open(task.join("children"))
            .and_then(|mut f| io::Read::read_to_end(&mut f, &mut text));
        if read.is_ok() {
            found.extend(
                text.split(|b| b.is_ascii_whitespace())
                    .filter_map(|w| std::str::from_utf8(w).ok()?.parse::<i32>().ok())
                    .filter_map(Pid::new),
            );
        }
    }
    found
}

/// The names a process is known by: its executable's basename and its `argv[0]`'s
/// basename (either may be unreadable, e.g. for another user's process).
pub fn process_names(pid: Pid) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) {
        let exe = exe.to_string_lossy();
        // A replaced binary reads as "/path/name (deleted)".
        let exe = exe.trim_end_matches(" (deleted)");
        if let Some(base) = Path::new(exe).file_name() {
            names.push(base.to_string_lossy().into_owned());
        }
    }
    if let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) {
        let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
        if let Some(base) = Path::new(OsStr::from_bytes(argv0)).file_name() {
            names.push(base.to_string_lossy().into_owned());
        }
    }
    names
}

/// Whether the initial environment of `pid` (`/proc/PID/environ`, as it was at
/// exec) holds exactly the entry `entry` (`KEY=value`).
pub fn environ_has(pid: Pid, entry: &str) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|&b| b == 0).any(|e| e == entry.as_bytes()))
        .unwrap_or(false)
}

/// Whether `pid` is a kernel thread (`PF_KTHREAD` in the flags, field 9 of
/// `/proc/PID/stat`). A kernel thread never exits on a user's account, so it can
/// never be an owner that dies. False when there is no such process.
pub fn is_kernel_thread(pid: Pid) -> bool {
    fs::read(format!("/proc/{pid}/stat")).is_ok_and(|text| stat_has_kthread_flag(&text))
}

/// `PF_KTHREAD` from `include/linux/sched.h`; the libc crate does not export it.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Whether the flags word (field 9) of a `/proc/PID/stat` text has `PF_KTHREAD`.
/// Fields are counted from the last `)`, as in [`parse_stat`].
fn stat_has_kthread_flag(text: &[u8]) -> bool {
    let Some(close) = text.iter().rposition(|&b| b == b')') else {
        return false;
    };
    std::str::from_utf8(&text[close + 1..])
        .ok()
        .and_then(|rest| {
            rest.split_ascii_whitespace()
                .nth(9 - 3)?
                .parse::<u64>()
                .ok()
        })
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = b"4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        let info = parse_stat(Pid::new(4242).unwrap(), line).unwrap();
        assert_eq!(info.ppid, Pid::new(17));
        assert_eq!(info.pgid, Pid::new(4242));
        assert_eq!(info.start, StartTime(987654));
        assert_eq!(info.state, RunState::Live);
    }

    #[test]
    fn zombies_read_as_dead() {
        let line = b"7 (z) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0 0";
        assert_eq!(
            parse_stat(Pid::new(7).unwrap(), line).unwrap().state,
            RunState::Dead
        );
    }

    #[test]
    fn a_zombie_leader_with_live_threads_reads_as_live() {
        // Field 20 (threads) is 3: the leader exited, two threads run on.
        let line = b"7 (z) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 3 0 55 0 0 0";
        assert_eq!(
            parse_stat(Pid::new(7).unwrap(), line).unwrap().state,
            RunState::Live
        );
    }

    #[test]
    fn this_process_is_visible_with_a_start_time() {
        let me = proc_info(Pid::current()).unwrap();
        assert!(me.is_live());
        assert_eq!(me.ppid, crate::sys::parent_pid());
    }

    #[test]
    fn kernel_threads_are_told_by_their_flags() {
        let kthreadd = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 24 0 0";
        assert!(stat_has_kthread_flag(kthreadd));
        let user = b"4242 (a (b) 2129984) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20";
        assert!(!stat_has_kthread_flag(user));
        assert!(!stat_has_kthread_flag(b"garbage"));
        assert!(!is_kernel_thread(Pid::current()));
    }
}
