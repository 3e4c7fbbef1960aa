//! Who a process is: its start (creation) time, its parent from a Toolhelp
//! snapshot (never one younger than its child), its names, every process, its
//! children. See `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::mem::{size_of, zeroed};
use std::os::windows::io::{AsHandle, BorrowedHandle, OwnedHandle};

use windows_sys::Win32::Foundation::FILETIME;
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW, TH32CS_SNAPPROCESS,
};
use windows_sys::Win32::System::Threading::{
    GetProcessTimes, OpenProcess, PROCESS_ACCESS_RIGHTS, PROCESS_QUERY_LIMITED_INFORMATION,
    PROCESS_SYNCHRONIZE,
};

use super::{check, filetime, is_signalled, owned_or_invalid, owned_or_null, raw};
use crate::process::{Pid, ProcInfo, RunState, StartTime};

/// Opens a process for the given rights.
pub(super) fn open_process(pid: Pid, access: PROCESS_ACCESS_RIGHTS) -> io::Result<OwnedHandle> {
    let id = u32::try_from(pid.get()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: OpenProcess takes plain values and returns a new handle or NULL.
    unsafe { owned_or_null(OpenProcess(access, 0, id)) }
}

/// The creation time of the process behind `handle`: with its PID, it names one
/// process for good (a recycled PID comes back with a later creation time). The
/// handle must have `PROCESS_QUERY_LIMITED_INFORMATION`.
pub(super) fn creation_time(handle: BorrowedHandle<'_>) -> io::Result<StartTime> {
    // SAFETY: FILETIME is plain data; all-zero is a valid value to overwrite.
    let mut times: [FILETIME; 4] = unsafe { zeroed() };
    let [created, exited, kernel, user] = &mut times;
    // SAFETY: a valid process handle and four FILETIMEs that live for the call.
    check(unsafe { GetProcessTimes(raw(&handle), created, exited, kernel, user) })?;
    Ok(StartTime(filetime(times[0])))
}

/// One row of a Toolhelp process snapshot.
#[derive(Clone, Debug)]
struct SnapshotEntry {
    pid: u32,
    parent: u32,
    exe: String,
}

/// Every process in the system right now, as Toolhelp lists them (PID, parent PID
/// as recorded at creation, exe file name). The parent PID is never updated: it may
/// name a process that exited long ago, or a newer one that took its PID.
fn snapshot() -> io::Result<Vec<SnapshotEntry>> {
    // SAFETY: returns a new snapshot handle or INVALID_HANDLE_VALUE.
    let snap = unsafe { owned_or_invalid(CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0)) }?;
    // SAFETY: PROCESSENTRY32W is plain data; all-zero is valid before dwSize is set.
    let mut entry: PROCESSENTRY32W = unsafe { zeroed() };
    entry.dwSize = size_of::<PROCESSENTRY32W>() as u32;
    let mut entries = Vec::new();
    // SAFETY: a valid snapshot handle and an entry whose dwSize is set.
    let mut more = unsafe { Process32FirstW(raw(&snap), &mut entry) } != 0;
    while more {
        let len = entry.szExeFile.iter().position(|&c| c == 0).unwrap_or(0);
        entries.push(SnapshotEntry {
            pid: entry.th32ProcessID,
            parent: entry.th32ParentProcessID,
            exe: String::from_utf16_lossy(&entry.szExeFile[..len]),
        });
        // SAFETY: as for Process32FirstW.
        more = unsafe { Process32NextW(raw(&snap), &mut entry) } != 0;
    }
    Ok(entries)
}

/// The start time of `pid` and whether it has exited, or `None` when it cannot be
/// opened (gone, or not ours to query: either way nothing we may act on).
fn identity(pid: Pid) -> Option<(StartTime, RunState)> {
    let handle = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE).ok()?;
    let start = creation_time(handle.as_handle()).ok()?;
    // An exited process whose handle someone still holds is Windows' zombie.
    let state = if is_signalled(handle.as_handle()) {
        RunState::Dead
    } else {
        RunState::Live
    };
    Some((start, state))
}

/// The recorded parent of a process, if it is still that parent. Windows never
/// reparents: when a parent exits, its PID can be reused, and the newcomer would
/// read as the parent. A parent cannot be younger than its child, so a "parent"
/// created after the child is a newcomer. Equal times are accepted: creation times
/// tick coarsely (about 15.6 ms on many systems), a child is often started within
/// its parent's first tick, and a newcomer needs the parent to have exited first.
fn verified_parent(child_start: StartTime, parent: Option<(Pid, StartTime)>) -> Option<Pid> {
    let (pid, start) = parent?;
    (start <= child_start).then_some(pid)
}

fn info_from(
    pid: Pid,
    start: StartTime,
    state: RunState,
    parent: Option<(Pid, StartTime)>,
) -> ProcInfo {
    ProcInfo {
        pid,
        ppid: verified_parent(start, parent),
        // Windows has no Unix process groups or sessions to report.
        pgid: None,
        sid: None,
        start,
        state,
    }
}

/// One process, as [`proc_info`]: `Ok(None)` when it cannot be queried. A failed
/// query is not told apart from a missing process on Windows.
pub fn proc_lookup(pid: Pid) -> io::Result<Option<ProcInfo>> {
    Ok(proc_info(pid))
}

/// One process, or `None` when there is no such process (or it cannot be queried).
pub fn proc_info(pid: Pid) -> Option<ProcInfo> {
    let (start, state) = identity(pid)?;
    let parent = snapshot()
        .ok()
        .and_then(|all| all.into_iter().find(|e| Pid::from_u32(e.pid) == Some(pid)))
        .and_then(|e| Pid::from_u32(e.parent))
        .and_then(|ppid| Some((ppid, identity(ppid)?.0)));
    Some(info_from(pid, start, state, parent))
}

/// Every process that can be queried right now (a snapshot: processes come and go
/// while it is taken, and callers re-check what they act on). Processes whose start
/// time cannot be read (the System process, other users' protected ones) are left
/// out: without an identity they can be neither owners nor ours.
pub fn all_processes() -> Vec<ProcInfo> {
    let Ok(entries) = snapshot() else {
        return Vec::new();
    };
    let known: Vec<(Pid, u32, StartTime, RunState)> = entries
        .iter()
        .filter_map(|e| {
            let pid = Pid::from_u32(e.pid)?;
            let (start, state) = identity(pid)?;
            Some((pid, e.parent, start, state))
        })
        .collect();
    let start_of = |raw: u32| {
        known
            .iter()
            .find(|(pid, ..)| Pid::from_u32(raw) == Some(*pid))
            .map(|&(pid, _, start, _)| (pid, start))
    };
    known
        .iter()
        .map(|&(pid, parent, start, state)| info_from(pid, start, state, start_of(parent)))
        .collect()
}

/// The names a process is known by: its exe file name ("claude.exe") and that
/// name without `.exe` ("claude"), so `--owner-ancestor claude` matches on every
/// platform. Windows names are case-insensitive; callers compare as they see fit.
/// argv[0] is not read (it lives in the process's own memory, the PEB).
pub fn process_names(pid: Pid) -> Vec<String> {
    let Some(entry) = snapshot()
        .ok()
        .and_then(|all| all.into_iter().find(|e| Pid::from_u32(e.pid) == Some(pid)))
    else {
        return Vec::new();
    };
    let mut names = vec![entry.exe.clone()];
    if let Some(stem) = entry
        .exe
        .len()
        .checked_sub(4)
        .filter(|&cut| {
            entry.exe.is_char_boundary(cut) && entry.exe[cut..].eq_ignore_ascii_case(".exe")
        })
        .map(|cut| entry.exe[..cut].to_string())
    {
        names.push(stem);
    }
    names
}

/// Whether `pid` is one of the kernel's own processes (System, 4; Idle is PID 0,
/// which no [`Pid`] names): it never exits on a user's account, so it can never be
/// an owner that dies.
pub fn is_kernel_thread(pid: Pid) -> bool {
    pid.get() == 4
}

/// The parent of this process, if it still runs: the PID recorded at our creation,
/// accepted only if that process is not younger than us (else the PID was reused).
pub fn parent_pid() -> Option<Pid> {
    let me = Pid::current();
    let start = identity(me)?.0;
    let parent = snapshot()
        .ok()?
        .into_iter()
        .find(|e| Pid::from_u32(e.pid) == Some(me))
        .and_then(|e| Pid::from_u32(e.parent))?;
    verified_parent(start, Some((parent, identity(parent)?.0)))
}

/// Process snapshots record every parent, so children can always be listed.
pub fn children_listed() -> bool {
    true
}

/// The processes whose recorded parent is `pid` and that are younger than it (an
/// older one names a process that had the PID before). Processes whose parent has
/// exited are listed under nobody: Windows never reparents them. Empty when `pid`
/// is gone.
pub fn children(pid: Pid) -> Vec<Pid> {
    let Some((start, _)) = identity(pid) else {
        return Vec::new();
    };
    let Ok(all) = snapshot() else {
        return Vec::new();
    };
    all.iter()
        .filter(|e| Pid::from_u32(e.parent) == Some(pid))
        .filter_map(|e| Pid::from_u32(e.pid))
        .filter(|&child| identity(child).is_some_and(|(born, _)| born >= start))
        .collect()
}

/// Windows keeps no environment of another process that we could read without
/// reaching into its memory, and it needs none: a supervisor's whole tree is in its
/// job, which the kernel kills when the supervisor dies, so a sweep never finds
/// leftovers carrying a tree marker. Always `false`.
pub fn environ_has(_pid: Pid, _entry: &str) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: u64) -> StartTime {
        StartTime(t)
    }

    #[test]
    fn a_parent_younger_than_its_child_is_a_reused_pid() {
        let parent = Pid::new(8).unwrap();
        assert_eq!(
            verified_parent(at(100), Some((parent, at(50)))),
            Some(parent)
        );
        assert_eq!(
            verified_parent(at(100), Some((parent, at(100)))),
            Some(parent)
        );
        assert_eq!(verified_parent(at(100), Some((parent, at(101)))), None);
        assert_eq!(verified_parent(at(100), None), None);
    }

    #[test]
    fn this_process_is_visible_with_a_start_time_and_its_name() {
        let me = proc_info(Pid::current()).unwrap();
        assert!(me.is_live());
        let names = process_names(Pid::current());
        assert!(
            names
                .iter()
                .any(|n| n.to_ascii_lowercase().ends_with(".exe")),
            "{names:?}"
        );
    }
}
