//! Windows implementation of the platform seam.
//!
//! The same questions as on Linux, answered with handles and job objects:
//!
//! | question | Windows |
//! |---|---|
//! | who is this process (start time, parent, state)? | `GetProcessTimes` on a handle; parent and exe name from a Toolhelp snapshot |
//! | has this owner gone? | its process handle (`SYNCHRONIZE`) is signalled: [`poll`] waits on it |
//! | keep the server (and its whole tree) from outliving us | a [`Job`] with `KILL_ON_JOB_CLOSE`, joined while suspended |
//! | ask the server to stop | `CTRL_BREAK_EVENT` to its process group ([`request_stop`]) |
//! | kill the tree | [`Job::terminate`] |
//! | who is at the other end of the control channel? | [`PipeStream::peer_is_current_user`]: the peer's PID from the pipe, its token's user |
//! | was this file removed or replaced? | change notifications on its directory ([`FileWatch`]), then [`FileId`] |
//!
//! Every wake-up source is a waitable `HANDLE` that stays signalled while it is
//! ready (level-triggered, like `poll(2)`): a process handle once the process has
//! exited, a manual-reset event for everything else. Sockets and pipes join the wait
//! through such an event: a named pipe's pending overlapped `ConnectNamedPipe`,
//! `ReadFile` or `WriteFile` sets the event in its `OVERLAPPED` when it completes
//! ([`PipeListener::handle`], [`PipeStream::read_handle`],
//! [`PipeStream::write_handle`]), and a socket would be tied to an event with
//! `WSAEventSelect` (`FD_READ | FD_CLOSE`). Auto-reset events must never be waited
//! on: [`poll`] looks at every handle again after a wake, and that look would
//! consume them.
//!
//! Items with no Windows meaning keep their Linux signature and say so: no-ops
//! where the job object already gives the guarantee (`become_child_subreaper`),
//! `Unsupported` where the caller asked for something Windows cannot do
//! (`new_session`). Every `unsafe` block carries a `// SAFETY:` comment.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::{FileTypeExt, OpenOptionsExt};
use std::os::windows::io::{
    AsHandle, AsRawHandle, BorrowedHandle, FromRawHandle, HandleOrInvalid, HandleOrNull,
    OwnedHandle, RawHandle,
};
use std::os::windows::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_BROKEN_PIPE, ERROR_IO_INCOMPLETE, ERROR_IO_PENDING, ERROR_MORE_DATA, ERROR_PIPE_BUSY,
    ERROR_PIPE_CONNECTED, FILETIME, GENERIC_READ, GENERIC_WRITE, HANDLE, HLOCAL, LocalFree,
    WAIT_ABANDONED_0, WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
    GetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    GetLengthSid, GetTokenInformation, OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
    SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER, TokenUser,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, CreateDirectoryW, CreateFileW, FILE_FLAG_BACKUP_SEMANTICS,
    FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OPEN_REPARSE_POINT, FILE_FLAG_OVERLAPPED,
    FILE_NOTIFY_CHANGE, FILE_NOTIFY_CHANGE_DIR_NAME, FILE_NOTIFY_CHANGE_FILE_NAME,
    FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FindCloseChangeNotification,
    FindFirstChangeNotificationW, FindNextChangeNotification, GetFileInformationByHandle,
    OPEN_EXISTING, PIPE_ACCESS_DUPLEX, ReadFile, SECURITY_IDENTIFICATION, SECURITY_SQOS_PRESENT,
    WriteFile,
};
use windows_sys::Win32::System::Console::{CTRL_BREAK_EVENT, GenerateConsoleCtrlEvent};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW, TH32CS_SNAPPROCESS,
    TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, JOBOBJECT_BASIC_PROCESS_ID_LIST,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectBasicAccountingInformation,
    JobObjectBasicProcessIdList, JobObjectExtendedLimitInformation, QueryInformationJobObject,
    SetInformationJobObject, TerminateJobObject,
};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, GetNamedPipeClientProcessId, GetNamedPipeServerProcessId,
    PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_UNLIMITED_INSTANCES,
    PIPE_WAIT, WaitNamedPipeW,
};
use windows_sys::Win32::System::SystemInformation::GetSystemTimeAsFileTime;
use windows_sys::Win32::System::Threading::{
    CREATE_NEW_PROCESS_GROUP, CREATE_SUSPENDED, CreateEventW, GetCurrentProcess,
    GetExitCodeProcess, GetProcessTimes, INFINITE, OpenProcess, OpenProcessToken, OpenThread,
    PROCESS_ACCESS_RIGHTS, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, ResetEvent,
    ResumeThread, SetEvent, THREAD_SUSPEND_RESUME, TerminateProcess, WaitForMultipleObjects,
    WaitForSingleObject,
};

use crate::process::{Pid, ProcInfo, RunState, StartTime};

// ---------------------------------------------------------------------------
// Small helpers: every Win32 return convention turned into io::Result once.

/// A NUL-terminated UTF-16 copy of `s`, as the `…W` functions want.
fn wide(s: impl AsRef<OsStr>) -> Vec<u16> {
    s.as_ref().encode_wide().chain(Some(0)).collect()
}

/// A `BOOL`-returning call's result.
fn check(ok: windows_sys::core::BOOL) -> io::Result<()> {
    if ok != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes ownership of a handle from a function that returns NULL on failure.
///
/// # Safety
/// `raw` must be NULL or a handle that the caller owns and nobody else closes.
unsafe fn owned_or_null(raw: HANDLE) -> io::Result<OwnedHandle> {
    // SAFETY: forwarded from the caller: `raw` is NULL or ours alone.
    let handle = unsafe { HandleOrNull::from_raw_handle(raw as RawHandle) };
    OwnedHandle::try_from(handle).map_err(|_| io::Error::last_os_error())
}

/// Takes ownership of a handle from a function that returns `INVALID_HANDLE_VALUE`
/// on failure (`CreateFileW`, `CreateNamedPipeW`, `CreateToolhelp32Snapshot`).
///
/// # Safety
/// `raw` must be `INVALID_HANDLE_VALUE` or a handle the caller owns alone.
unsafe fn owned_or_invalid(raw: HANDLE) -> io::Result<OwnedHandle> {
    // SAFETY: forwarded from the caller: `raw` is INVALID_HANDLE_VALUE or ours alone.
    let handle = unsafe { HandleOrInvalid::from_raw_handle(raw as RawHandle) };
    OwnedHandle::try_from(handle).map_err(|_| io::Error::last_os_error())
}

fn raw(handle: &impl AsRawHandle) -> HANDLE {
    handle.as_raw_handle() as HANDLE
}

/// A manual-reset event, initially not signalled (see the module header for why
/// never auto-reset).
fn manual_event() -> io::Result<OwnedHandle> {
    // SAFETY: no security attributes, no name; the new handle is ours alone.
    unsafe { owned_or_null(CreateEventW(std::ptr::null(), 1, 0, std::ptr::null())) }
}

/// Whether a waitable handle is signalled now, without waiting.
fn is_signalled(handle: BorrowedHandle<'_>) -> bool {
    // SAFETY: a valid handle borrowed for the call; a zero timeout never blocks.
    unsafe { WaitForSingleObject(raw(&handle), 0) == WAIT_OBJECT_0 }
}

fn filetime(ft: FILETIME) -> u64 {
    (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime)
}

/// Now, in the unit of [`StartTime`] (100 ns since 1601, UTC).
fn now_filetime() -> u64 {
    // SAFETY: FILETIME is plain data; the call writes it.
    let mut ft: FILETIME = unsafe { zeroed() };
    // SAFETY: one FILETIME that lives for the call.
    unsafe { GetSystemTimeAsFileTime(&mut ft) };
    filetime(ft)
}

/// A `Duration` as a wait's milliseconds, rounded up so that a 0.4 ms wait does not
/// become a busy 0 ms loop, and kept below `INFINITE`.
fn wait_millis(timeout: Option<Duration>) -> u32 {
    match timeout {
        None => INFINITE,
        Some(d) => d.as_micros().div_ceil(1000).min(u128::from(INFINITE - 1)) as u32,
    }
}

// ---------------------------------------------------------------------------
// Process identity.

/// Opens a process for the given rights.
fn open_process(pid: Pid, access: PROCESS_ACCESS_RIGHTS) -> io::Result<OwnedHandle> {
    let id = u32::try_from(pid.get()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: OpenProcess takes plain values and returns a new handle or NULL.
    unsafe { owned_or_null(OpenProcess(access, 0, id)) }
}

/// The creation time of the process behind `handle`: with its PID, it names one
/// process for good (a recycled PID comes back with a later creation time). The
/// handle must have `PROCESS_QUERY_LIMITED_INFORMATION`.
fn creation_time(handle: BorrowedHandle<'_>) -> io::Result<StartTime> {
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

/// Whether a process can never exit while we watch it: the Idle (0) and System (4)
/// processes, or ourselves. Such a PID must not be accepted as an owner.
pub fn is_immortal(pid: Pid) -> bool {
    pid.get() == 4 || pid == Pid::current()
}

/// Windows keeps no environment of another process that we could read without
/// reaching into its memory, and it needs none: a supervisor's whole tree is in its
/// job, which the kernel kills when the supervisor dies, so a sweep never finds
/// leftovers carrying a tree marker. Always `false`.
pub fn environ_has(_pid: Pid, _entry: &str) -> bool {
    false
}

// ---------------------------------------------------------------------------
// Owners: process handles.

/// A handle on one process (the Windows counterpart of a pidfd): it keeps naming
/// that process, and keeps its PID from being reused, for as long as it is open.
/// It is signalled once the process has exited, so [`poll`] can wait on it.
#[derive(Debug)]
pub struct PidFd(OwnedHandle);

impl PidFd {
    /// Opens `pid` for waiting, querying and terminating (terminating succeeds only
    /// where we are allowed to: our own servers).
    pub fn open(pid: Pid) -> io::Result<PidFd> {
        open_process(pid, PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION).map(PidFd)
    }

    /// The same process as a child we spawned (the handle is duplicated, so the
    /// `Child` may be dropped).
    pub fn of_child(child: &Child) -> io::Result<PidFd> {
        Ok(PidFd(child.as_handle().try_clone_to_owned()?))
    }

    pub fn try_clone(&self) -> io::Result<PidFd> {
        Ok(PidFd(self.0.try_clone()?))
    }

    /// The process's creation time, read through the handle: unlike a lookup by
    /// PID, it cannot be answered by a process that took the PID since.
    pub fn start_time(&self) -> io::Result<StartTime> {
        creation_time(self.0.as_handle())
    }

    pub fn has_exited(&self) -> bool {
        is_signalled(self.0.as_handle())
    }

    /// Kills the process. Only a handle with `PROCESS_TERMINATE` can: one from
    /// [`PidFd::of_child`] (our server), never an owner's from [`PidFd::open`].
    pub fn terminate(&self, exit_code: u32) -> io::Result<()> {
        // SAFETY: a valid process handle; the call checks its access rights.
        check(unsafe { TerminateProcess(raw(&self.0), exit_code) })
    }

    /// Its exit status once it has exited. A process killed from outside reports
    /// the code its killer chose (under Wine: 0).
    pub fn exit_status(&self) -> io::Result<Option<ExitStatus>> {
        if !self.has_exited() {
            return Ok(None);
        }
        let mut code = 0u32;
        // SAFETY: a valid process handle and one u32 that lives for the call.
        check(unsafe { GetExitCodeProcess(raw(&self.0), &mut code) })?;
        Ok(Some(ExitStatus::from_raw(code)))
    }
}

impl AsHandle for PidFd {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        self.0.as_handle()
    }
}

/// Process handles can always be waited on.
pub fn pidfd_supported() -> bool {
    true
}

/// Whether `pid` has exited. It is only safe for a process whose handle we hold
/// elsewhere (the server's, in its [`PidFd`]): that keeps the PID from being reused.
pub fn has_exited(pid: Pid) -> io::Result<bool> {
    let handle = open_process(pid, PROCESS_SYNCHRONIZE)?;
    Ok(is_signalled(handle.as_handle()))
}

/// The exit status of `pid` once it has exited. Windows has no zombies to reap: a
/// process's record goes when its last handle closes. As [`has_exited`], only for
/// a process whose handle we hold.
pub fn reap(pid: Pid) -> io::Result<Option<ExitStatus>> {
    PidFd(open_process(
        pid,
        PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION,
    )?)
    .exit_status()
}

// ---------------------------------------------------------------------------
// Waiting.

/// What a wait source is waited on for. On Windows the handle itself carries it
/// (a pipe's read event or write event), so it is kept only for the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

/// At most this many handles go into one `WaitForMultipleObjects`.
const MAX_WAIT: usize = 64;

/// Waits until one of `handles` is signalled or `timeout` passes (`None`: forever).
pub fn poll_readable(
    handles: &[BorrowedHandle<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let sources: Vec<_> = handles.iter().map(|&h| (h, Interest::Read)).collect();
    poll(&sources, timeout)
}

/// Waits until one of `sources` is signalled, or `timeout` passes (`None`:
/// forever), and returns which are signalled now.
///
/// Up to 64 handles are one `WaitForMultipleObjects`. Beyond that, the handles go
/// in chunks of 63 to helper threads (this thread takes the first), each chunk
/// waited on together with one shared manual-reset event: whoever wakes first sets
/// it, which releases every other waiter at once. After any wake every handle is
/// looked at again without waiting, so all that are ready are reported, as
/// `poll(2)` does.
pub fn poll(
    sources: &[(BorrowedHandle<'_>, Interest)],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let handles: Vec<BorrowedHandle<'_>> = sources.iter().map(|&(h, _)| h).collect();
    if handles.is_empty() {
        let Some(timeout) = timeout else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "nothing to wait on, and no timeout",
            ));
        };
        std::thread::sleep(timeout);
        return Ok(Vec::new());
    }
    let millis = wait_millis(timeout);
    if handles.len() <= MAX_WAIT {
        wait_any(&handles, millis)?;
    } else if !handles.iter().any(|&h| is_signalled(h)) {
        wait_any_chunked(&handles, millis)?;
    }
    Ok(handles.iter().map(|&h| is_signalled(h)).collect())
}

/// One `WaitForMultipleObjects` (any of at most 64 handles); whether one woke it.
fn wait_any(handles: &[BorrowedHandle<'_>], millis: u32) -> io::Result<bool> {
    // The same handle twice makes the wait fail (ERROR_INVALID_PARAMETER).
    let mut raws: Vec<HANDLE> = handles.iter().map(raw).collect();
    raws.sort_unstable();
    raws.dedup();
    // SAFETY: at most 64 valid handles in an array that lives for the call.
    let rc = unsafe { WaitForMultipleObjects(raws.len() as u32, raws.as_ptr(), 0, millis) };
    let n = raws.len() as u32;
    match rc {
        _ if (WAIT_OBJECT_0..WAIT_OBJECT_0 + n).contains(&rc) => Ok(true),
        // An abandoned mutex counts as signalled; none is waited on here anyway.
        _ if (WAIT_ABANDONED_0..WAIT_ABANDONED_0 + n).contains(&rc) => Ok(true),
        WAIT_TIMEOUT => Ok(false),
        WAIT_FAILED => Err(io::Error::last_os_error()),
        _ => Err(io::Error::other(format!("unexpected wait result {rc:#x}"))),
    }
}

/// More than 64 handles: see [`poll`].
fn wait_any_chunked(handles: &[BorrowedHandle<'_>], millis: u32) -> io::Result<()> {
    let woke = manual_event()?;
    let woke = woke.as_handle();
    let chunks: Vec<Vec<BorrowedHandle<'_>>> = handles
        .chunks(MAX_WAIT - 1)
        .map(|chunk| chunk.iter().copied().chain(Some(woke)).collect())
        .collect();
    let release = || {
        // SAFETY: a valid event handle borrowed for the call.
        unsafe { SetEvent(raw(&woke)) };
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = chunks[1..]
            .iter()
            .map(|chunk| {
                scope.spawn(move || {
                    let result = wait_any(chunk, millis);
                    release();
                    result
                })
            })
            .collect();
        let mine = wait_any(&chunks[0], millis);
        release();
        helpers
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("waiter panicked")))
            })
            .chain(Some(mine))
            .try_for_each(|r| r.map(|_| ()))
    })
}

// ---------------------------------------------------------------------------
// Containment: the job object.

/// A job object that holds the server and everything it starts. Its only handle is
/// ours, and it is created with `KILL_ON_JOB_CLOSE`: when that handle closes — we
/// exit, crash, or are killed, however — the kernel terminates every process in the
/// job, grandchildren included. No descendant can leave it: breakaway is not
/// allowed, so `CREATE_BREAKAWAY_FROM_JOB` fails.
#[derive(Debug)]
pub struct Job(OwnedHandle);

impl Job {
    pub fn new() -> io::Result<Job> {
        // SAFETY: no security attributes (the handle is not inheritable), no name.
        let job =
            Job(unsafe { owned_or_null(CreateJobObjectW(std::ptr::null(), std::ptr::null())) }?);
        // SAFETY: the structure is plain data; all-zero means "no limits".
        let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { zeroed() };
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        // SAFETY: a valid job handle, and a structure of the size we pass that lives
        // for the call.
        check(unsafe {
            SetInformationJobObject(
                raw(&job.0),
                JobObjectExtendedLimitInformation,
                (&limits as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
                size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        })?;
        Ok(job)
    }

    /// Puts a child that was created suspended (see [`die_with_supervisor`]) into
    /// the job, then lets it run: not one of its instructions runs outside the job,
    /// so nothing it starts can be outside it either. If it cannot join, it is
    /// terminated before it ever ran, never left running unconfined.
    pub fn adopt(&self, child: &Child) -> io::Result<()> {
        // SAFETY: a valid job handle and the child's valid process handle.
        let joined = check(unsafe { AssignProcessToJobObject(raw(&self.0), raw(child)) })
            .and_then(|()| resume_suspended(child.id()));
        if joined.is_err() {
            // SAFETY: the child's valid process handle; it has not run yet.
            unsafe { TerminateProcess(raw(child), 1) };
        }
        joined
    }

    /// The PIDs of the processes in the job now.
    pub fn members(&self) -> io::Result<Vec<Pid>> {
        let mut capacity = 64usize;
        loop {
            // The list is a header and `capacity` PIDs; usize words keep the
            // buffer aligned for it.
            let words =
                size_of::<JOBOBJECT_BASIC_PROCESS_ID_LIST>() / size_of::<usize>() + capacity;
            let mut buffer = vec![0usize; words];
            let bytes = (words * size_of::<usize>()) as u32;
            // SAFETY: a valid job handle and a zeroed buffer of `bytes` bytes,
            // aligned for the structure, that lives for the call.
            let ok = unsafe {
                QueryInformationJobObject(
                    raw(&self.0),
                    JobObjectBasicProcessIdList,
                    buffer.as_mut_ptr().cast(),
                    bytes,
                    std::ptr::null_mut(),
                )
            };
            let error = io::Error::last_os_error();
            // SAFETY: the buffer starts with the structure's header, which the call
            // filled (or left zeroed).
            let list = unsafe { &*(buffer.as_ptr() as *const JOBOBJECT_BASIC_PROCESS_ID_LIST) };
            let assigned = list.NumberOfAssignedProcesses as usize;
            if ok == 0 && error.raw_os_error() != Some(ERROR_MORE_DATA as i32) {
                return Err(error);
            }
            if ok == 0 || assigned > list.NumberOfProcessIdsInList as usize {
                capacity = assigned.max(capacity) * 2;
                continue;
            }
            let count = list.NumberOfProcessIdsInList as usize;
            // SAFETY: the call wrote `count` PIDs after the header, inside `buffer`.
            let ids = unsafe { std::slice::from_raw_parts(list.ProcessIdList.as_ptr(), count) };
            return Ok(ids
                .iter()
                .filter_map(|&id| Pid::from_u32(id as u32))
                .collect());
        }
    }

    /// How many processes in the job are still running.
    pub fn active(&self) -> io::Result<u32> {
        // SAFETY: plain data; all-zero is a valid value to overwrite.
        let mut info: JOBOBJECT_BASIC_ACCOUNTING_INFORMATION = unsafe { zeroed() };
        // SAFETY: a valid job handle and a structure of the size we pass.
        check(unsafe {
            QueryInformationJobObject(
                raw(&self.0),
                JobObjectBasicAccountingInformation,
                (&mut info as *mut JOBOBJECT_BASIC_ACCOUNTING_INFORMATION).cast(),
                size_of::<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>() as u32,
                std::ptr::null_mut(),
            )
        })?;
        Ok(info.ActiveProcesses)
    }

    /// Kills every process in the job at once, each with `exit_code`.
    pub fn terminate(&self, exit_code: u32) -> io::Result<()> {
        // SAFETY: a valid job handle.
        check(unsafe { TerminateJobObject(raw(&self.0), exit_code) })
    }
}

/// Resumes the (single) thread of a process created suspended. std does not hand
/// out the main thread's handle, so the thread is found in a Toolhelp thread
/// snapshot. The process cannot have made another thread: it never ran.
fn resume_suspended(pid: u32) -> io::Result<()> {
    // SAFETY: returns a new snapshot handle or INVALID_HANDLE_VALUE.
    let snap = unsafe { owned_or_invalid(CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0)) }?;
    // SAFETY: plain data; all-zero is valid before dwSize is set.
    let mut entry: THREADENTRY32 = unsafe { zeroed() };
    entry.dwSize = size_of::<THREADENTRY32>() as u32;
    let mut resumed = false;
    // SAFETY: a valid snapshot handle and an entry whose dwSize is set.
    let mut more = unsafe { Thread32First(raw(&snap), &mut entry) } != 0;
    while more {
        if entry.th32OwnerProcessID == pid {
            // SAFETY: OpenThread returns a new handle or NULL.
            let thread =
                unsafe { owned_or_null(OpenThread(THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID)) }?;
            // SAFETY: a valid thread handle with THREAD_SUSPEND_RESUME.
            if unsafe { ResumeThread(raw(&thread)) } == u32::MAX {
                return Err(io::Error::last_os_error());
            }
            resumed = true;
        }
        // SAFETY: as for Thread32First.
        more = unsafe { Thread32Next(raw(&snap), &mut entry) } != 0;
    }
    if resumed {
        Ok(())
    } else {
        Err(io::Error::other(
            "the suspended child has no thread to resume",
        ))
    }
}

/// Prepares the server's command: created suspended (so that [`Job::adopt`] puts it
/// into the job before it runs) and in a new process group (so that
/// [`request_stop`] can reach it, and a Ctrl-C meant for ocwrap's console does
/// not). The caller must pass the child to `Job::adopt`: until then it does not
/// run. `supervisor` is unused: the job, not a parent check, ties the server to us.
pub fn die_with_supervisor(command: &mut Command, _supervisor: Pid) {
    command.creation_flags(CREATE_SUSPENDED | CREATE_NEW_PROCESS_GROUP);
}

/// No-op: Windows has no subreaper. The job is what keeps every descendant in
/// ocwrap's tree, wherever its parent went.
pub fn become_child_subreaper() -> io::Result<()> {
    Ok(())
}

/// The graceful request to stop: `CTRL_BREAK_EVENT` to the server's process group
/// (the server's PID; see [`die_with_supervisor`]). It reaches only processes
/// attached to ocwrap's console; a server without one gets nothing, and teardown
/// goes on to [`Job::terminate`] after the grace. Wine does not implement it.
pub fn request_stop(group: Pid) -> io::Result<()> {
    let group =
        u32::try_from(group.get()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // Group 0 would mean every process on our console, ourselves included.
    if group == 0 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: plain values.
    check(unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group) })
}

// ---------------------------------------------------------------------------
// ocwrap's own console events.

/// Ctrl-C, Ctrl-Break and console close (and logoff/shutdown) for ocwrap itself,
/// through `ctrlc`: each is a request to stop. They arrive on a thread of their own;
/// this turns them into a count and a manual-reset event the loop waits on. On
/// console close Windows gives the handler about 5 s before it kills ocwrap; then
/// the job's handle closes and the tree goes with it anyway.
#[derive(Debug)]
pub struct StopRequests {
    event: Arc<OwnedHandle>,
    count: Arc<AtomicUsize>,
}

impl StopRequests {
    /// Installs the handler (once per process).
    pub fn install() -> io::Result<StopRequests> {
        let event = Arc::new(manual_event()?);
        let count = Arc::new(AtomicUsize::new(0));
        let (set, counted) = (Arc::clone(&event), Arc::clone(&count));
        ctrlc::set_handler(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            // SAFETY: a valid event handle kept alive by the Arc.
            unsafe { SetEvent(raw(&*set)) };
        })
        .map_err(io::Error::other)?;
        Ok(StopRequests { event, count })
    }

    /// Signalled while a request is pending.
    pub fn handle(&self) -> BorrowedHandle<'_> {
        self.event.as_handle()
    }

    /// How many requests arrived since the last call. The event is reset before the
    /// count is taken, so a request arriving in between is never lost (at worst it
    /// causes one empty wake-up).
    pub fn drain(&self) -> usize {
        // SAFETY: a valid event handle.
        unsafe { ResetEvent(raw(&*self.event)) };
        self.count.swap(0, Ordering::SeqCst)
    }
}

/// No-op: there are no job-control signals (SIGTTIN/SIGTTOU) on Windows.
pub fn ignore_signal(_signal: i32) -> io::Result<()> {
    Ok(())
}

/// No-op: Windows does not hand out the lowest free number for a new handle, so a
/// missing standard handle can never be taken by a file ocwrap opens later.
pub fn ensure_stdio_open() -> io::Result<()> {
    Ok(())
}

/// Test fixtures only: Windows has no sessions to start. A process cannot leave
/// the job either (breakaway is not allowed), which is what an escape would test.
pub fn new_session() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no sessions on Windows; job members cannot break away",
    ))
}

/// Not offered: files have no non-blocking mode on Windows, and a log path cannot
/// be a FIFO that blocks `open` (a named pipe without a free instance fails at once
/// with `ERROR_PIPE_BUSY`).
pub fn set_nonblocking(_handle: BorrowedHandle<'_>, _on: bool) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Not offered: per-process wake-up counts would need `NtQuerySystemInformation`.
pub fn voluntary_context_switches(_pid: Pid) -> io::Result<u64> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Writes one diagnostic line to stderr without ever blocking the caller.
///
/// Windows cannot say whether a pipe write would block (a pipe's free-space figure
/// shrinks by the size of the reader's pending read, so a reader that waits reads
/// as "full"). So lines go to one writer thread through a bounded queue: a stderr
/// nobody reads stalls only that thread, and lines that do not fit in the queue are
/// dropped, as on Linux when stderr is not writable.
pub fn write_stderr_line(line: Vec<u8>) {
    static QUEUE: OnceLock<Option<mpsc::SyncSender<Vec<u8>>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (send, receive) = mpsc::sync_channel::<Vec<u8>>(64);
        std::thread::Builder::new()
            .name("stderr".into())
            .spawn(move || {
                use std::io::Write;
                for line in receive {
                    let _ = io::stderr().lock().write_all(&line);
                }
            })
            .ok()
            .map(|_| send)
    });
    if let Some(queue) = queue {
        let _ = queue.try_send(line);
    }
}

// ---------------------------------------------------------------------------
// Users and private objects.

/// A user's security identifier: who owns a process or a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSid(Vec<u8>);

impl UserSid {
    /// The user that ocwrap runs as (its process token's user).
    pub fn current() -> io::Result<UserSid> {
        // SAFETY: GetCurrentProcess returns a pseudo-handle that needs no closing.
        token_user(unsafe { GetCurrentProcess() })
    }

    /// The user that the process `pid` runs as.
    pub fn of_process(pid: Pid) -> io::Result<UserSid> {
        let process = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION)?;
        token_user(raw(&process))
    }

    /// The SID's string form (`S-1-5-21-…`): unique per account, and made only of
    /// characters that are safe in a pipe name.
    pub fn to_string_form(&self) -> io::Result<String> {
        let mut text: *mut u16 = std::ptr::null_mut();
        // SAFETY: a valid SID (bytes copied from a token); the call allocates the
        // string with LocalAlloc and stores its address in `text`.
        check(unsafe { ConvertSidToStringSidW(self.0.as_ptr() as PSID, &mut text) })?;
        // SAFETY: on success `text` is a NUL-terminated UTF-16 string.
        let len = unsafe { (0..).take_while(|&i| *text.add(i) != 0).count() };
        // SAFETY: `len` u16s were just counted inside the string.
        let form = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) });
        // SAFETY: allocated by the call above with LocalAlloc, freed once.
        unsafe { LocalFree(text as HLOCAL) };
        Ok(form)
    }
}

/// The user of the process behind `process` (a handle with query rights).
fn token_user(process: HANDLE) -> io::Result<UserSid> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: a valid process handle; on success `token` is a new handle for us.
    check(unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) })?;
    // SAFETY: OpenProcessToken succeeded, so the handle is ours alone.
    let token = unsafe { OwnedHandle::from_raw_handle(token as RawHandle) };
    let mut needed = 0u32;
    // SAFETY: asks only for the size; no buffer is written.
    unsafe { GetTokenInformation(raw(&token), TokenUser, std::ptr::null_mut(), 0, &mut needed) };
    // usize words keep the buffer aligned for TOKEN_USER.
    let mut buffer = vec![0usize; (needed as usize).div_ceil(size_of::<usize>()).max(1)];
    // SAFETY: a buffer of at least `needed` bytes, aligned, living for the call.
    check(unsafe {
        GetTokenInformation(
            raw(&token),
            TokenUser,
            buffer.as_mut_ptr().cast(),
            (buffer.len() * size_of::<usize>()) as u32,
            &mut needed,
        )
    })?;
    // SAFETY: the call filled a TOKEN_USER at the start of the buffer; its SID
    // points inside the same buffer, which is still alive here.
    let sid = unsafe { (*(buffer.as_ptr() as *const TOKEN_USER)).User.Sid };
    Ok(UserSid(sid_bytes(sid)))
}

/// Copies a SID out of the memory that holds it.
fn sid_bytes(sid: PSID) -> Vec<u8> {
    // SAFETY: `sid` points at a valid SID (from a token or a security descriptor).
    let len = unsafe { GetLengthSid(sid) } as usize;
    // SAFETY: a valid SID is `len` bytes long.
    unsafe { std::slice::from_raw_parts(sid as *const u8, len) }.to_vec()
}

/// A security descriptor that admits only the current user (a protected DACL with
/// one entry granting that user everything): for the control pipe, and, inherited,
/// for the state directory and what is made in it.
struct PrivateSecurity(PSECURITY_DESCRIPTOR);

impl PrivateSecurity {
    fn new(user: &UserSid, inherited: bool) -> io::Result<PrivateSecurity> {
        let flags = if inherited { "OICI" } else { "" };
        let sddl = wide(format!("D:P(A;{flags};GA;;;{})", user.to_string_form()?));
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: a NUL-terminated SDDL string; on success the call allocates the
        // descriptor with LocalAlloc, and `Drop` frees it.
        check(unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        })?;
        Ok(PrivateSecurity(sd))
    }

    /// Attributes pointing at the descriptor; valid while `self` lives.
    fn attributes(&self) -> SECURITY_ATTRIBUTES {
        SECURITY_ATTRIBUTES {
            nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: self.0,
            bInheritHandle: 0,
        }
    }
}

impl Drop for PrivateSecurity {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe { LocalFree(self.0 as HLOCAL) };
    }
}

/// Creates a directory that only the current user can use (files made in it
/// inherit that).
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let security = PrivateSecurity::new(&UserSid::current()?, true)?;
    let attributes = security.attributes();
    let path = wide(path);
    // SAFETY: a NUL-terminated path and attributes whose descriptor lives for the call.
    check(unsafe { CreateDirectoryW(path.as_ptr(), &attributes) })
}

/// The owner of a file or directory.
pub fn file_owner(path: &Path) -> io::Result<UserSid> {
    let path = wide(path);
    let mut owner: PSID = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: a NUL-terminated path; on success `owner` points into `sd`, which the
    // call allocated with LocalAlloc and which is freed below, after the copy.
    let rc = unsafe {
        GetNamedSecurityInfoW(
            path.as_ptr(),
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION,
            &mut owner,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    let sid = UserSid(sid_bytes(owner));
    // SAFETY: allocated by GetNamedSecurityInfoW, freed once, not used after.
    unsafe { LocalFree(sd as HLOCAL) };
    Ok(sid)
}

/// Where records, locks and logs live by default: `%LOCALAPPDATA%\ocwrap`, which is
/// per user (the temp dir is not private on every Windows set-up).
pub fn default_state_dir() -> Option<PathBuf> {
    std::env::var_os("LOCALAPPDATA")
        .filter(|v| !v.is_empty())
        .map(|dir| PathBuf::from(dir).join("ocwrap"))
}

// ---------------------------------------------------------------------------
// State-dir entries and file identity.

/// Open a state-dir entry itself, never what it points to: a symlink or junction
/// planted under a record's or a lock's name is opened as the link, and the
/// caller's regular-file check refuses it. Opening a file never blocks on Windows.
pub const STATE_ENTRY_FLAGS: u32 = FILE_FLAG_OPEN_REPARSE_POINT;

/// Options for opening a state-dir entry (see [`STATE_ENTRY_FLAGS`]). Access is
/// limited by the state dir's inherited descriptor, not by a mode.
pub fn state_entry_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.custom_flags(STATE_ENTRY_FLAGS);
    options
}

/// Always `false`: on Windows a link is opened, not refused, and the caller's
/// regular-file check refuses it (see [`STATE_ENTRY_FLAGS`]).
pub fn is_symlink_refusal(_error: &io::Error) -> bool {
    false
}

/// What kind of file `meta` describes, in words.
pub fn file_kind(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    match () {
        _ if t.is_symlink_dir() || t.is_symlink_file() || t.is_symlink() => "a symlink",
        _ if t.is_file() => "a regular file",
        _ if t.is_dir() => "a directory",
        _ => "an unknown kind of file",
    }
}

/// Which file a path named when it was looked at: (volume serial, file index). A
/// file replaced under the same name has another identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    volume: u32,
    index: u64,
}

impl FileId {
    /// The identity of an open file.
    pub fn of_file(file: &fs::File) -> io::Result<FileId> {
        // SAFETY: plain data; all-zero is a valid value to overwrite.
        let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { zeroed() };
        // SAFETY: a valid file handle and a structure that lives for the call.
        check(unsafe { GetFileInformationByHandle(raw(file), &mut info) })?;
        Ok(FileId {
            volume: info.dwVolumeSerialNumber,
            index: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
        })
    }

    /// What `path` names now, without following a link; `None` if nothing.
    pub fn at(path: &Path) -> Option<FileId> {
        let wide_path = wide(path);
        // SAFETY: a NUL-terminated path; no access rights are asked for (identity
        // only), every sharing mode is allowed so nobody is disturbed, and the
        // result is a new handle or INVALID_HANDLE_VALUE.
        let handle = unsafe {
            owned_or_invalid(CreateFileW(
                wide_path.as_ptr(),
                0,
                FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                std::ptr::null(),
                OPEN_EXISTING,
                FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
                std::ptr::null_mut(),
            ))
        }
        .ok()?;
        FileId::of_file(&fs::File::from(handle)).ok()
    }
}

/// Wakes the loop when a watched file or directory may have been removed, renamed
/// or replaced.
///
/// Windows cannot watch one file: a change notification covers a directory's
/// entries. So a watched file wakes us for any name change in its directory (other
/// supervisors' too), and a watched directory for any directory-name change in its
/// parent; the caller then compares [`FileId`]s, which is cheap. The notifications
/// hold their directories open, which lets them be deleted (sharing includes
/// delete) but keeps a deleted one "pending" until [`FileWatch::drain`] drops the
/// notification; re-registering after a wipe therefore drains first.
#[derive(Debug, Default)]
pub struct FileWatch {
    notifications: Vec<Notification>,
}

#[derive(Debug)]
struct Notification {
    dir: PathBuf,
    filter: FILE_NOTIFY_CHANGE,
    handle: RawHandle,
}

// SAFETY: a change-notification handle may be used and closed from any thread.
unsafe impl Send for Notification {}

impl Drop for Notification {
    fn drop(&mut self) {
        // SAFETY: a change-notification handle we own; closed once, here.
        unsafe { FindCloseChangeNotification(self.handle as HANDLE) };
    }
}

impl FileWatch {
    pub fn new() -> io::Result<FileWatch> {
        Ok(FileWatch::default())
    }

    /// Wakes the watcher when the directory `dir` itself is removed or renamed.
    pub fn watch_dir(&mut self, dir: &Path) -> io::Result<()> {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        self.add(parent, FILE_NOTIFY_CHANGE_DIR_NAME)
    }

    /// Wakes the watcher when the file at `path` is removed, renamed or replaced
    /// (and when any other name in its directory changes).
    pub fn watch_file(&mut self, path: &Path) -> io::Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        self.add(dir, FILE_NOTIFY_CHANGE_FILE_NAME)
    }

    fn add(&mut self, dir: &Path, filter: FILE_NOTIFY_CHANGE) -> io::Result<()> {
        if self
            .notifications
            .iter()
            .any(|n| n.dir == dir && n.filter == filter)
        {
            return Ok(());
        }
        let wide_dir = wide(dir);
        // SAFETY: a NUL-terminated path; returns a new handle or INVALID_HANDLE_VALUE.
        let handle = unsafe { FindFirstChangeNotificationW(wide_dir.as_ptr(), 0, filter) };
        if handle == windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE {
            return Err(io::Error::last_os_error());
        }
        self.notifications.push(Notification {
            dir: dir.to_path_buf(),
            filter,
            handle: handle as RawHandle,
        });
        Ok(())
    }

    /// The handles to wait on (each signalled after a change, until drained).
    pub fn handles(&self) -> impl Iterator<Item = BorrowedHandle<'_>> {
        self.notifications.iter().map(|n| {
            // SAFETY: the handle is open for as long as `self` keeps the notification.
            unsafe { BorrowedHandle::borrow_raw(n.handle) }
        })
    }

    /// Re-arms every notification that fired; whether any had. A notification that
    /// cannot be re-armed (its directory is gone) is dropped.
    pub fn drain(&mut self) -> bool {
        let mut any = false;
        self.notifications.retain(|n| {
            // SAFETY: the handle is open while the notification is kept.
            let fired = unsafe { WaitForSingleObject(n.handle as HANDLE, 0) } == WAIT_OBJECT_0;
            if !fired {
                return true;
            }
            any = true;
            // SAFETY: a valid change-notification handle.
            unsafe { FindNextChangeNotification(n.handle as HANDLE) != 0 }
        });
        any
    }
}

// ---------------------------------------------------------------------------
// The control channel: a named pipe per name.

/// Longest name a named pipe may have (`\\.\pipe\` included).
pub const MAX_PIPE_NAME: usize = 256;

/// Each side's pipe buffer: far above one request (64 KiB at most) is not needed,
/// and a reply larger than it is written in pieces as the client reads.
const PIPE_BUFFER: u32 = 64 * 1024;

/// The control pipe's name for a supervisor name: `\\.\pipe\ocwrap-<SID>-<name>`.
/// The user's SID makes it per user; the pipe's descriptor (see
/// [`PipeListener::create`]) makes it private.
pub fn control_pipe_name(name: &str) -> io::Result<String> {
    let pipe = format!(
        r"\\.\pipe\ocwrap-{}-{name}",
        UserSid::current()?.to_string_form()?
    );
    if pipe.len() > MAX_PIPE_NAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pipe name too long",
        ));
    }
    Ok(pipe)
}

/// One overlapped operation slot: the `OVERLAPPED` (boxed: the kernel writes to its
/// address until the operation completes) and its manual-reset event.
struct Op {
    overlapped: Box<OVERLAPPED>,
    event: OwnedHandle,
    pending: bool,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Op")
            .field("event", &self.event)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl Op {
    fn new() -> io::Result<Op> {
        let event = manual_event()?;
        // SAFETY: plain data; all-zero is the documented initial state.
        let mut overlapped: Box<OVERLAPPED> = Box::new(unsafe { zeroed() });
        overlapped.hEvent = raw(&event);
        Ok(Op {
            overlapped,
            event,
            pending: false,
        })
    }

    /// Makes the event say "ready" without an operation (a connect that was
    /// already complete, a result kept for the next call).
    fn signal(&self) {
        // SAFETY: a valid event handle.
        unsafe { SetEvent(raw(&self.event)) };
    }

    /// The result of the pending operation if it is done: `Ok(None)` while not.
    fn finish(&mut self, file: &OwnedHandle) -> io::Result<Option<u32>> {
        let mut transferred = 0u32;
        // SAFETY: the OVERLAPPED of an operation started on `file`; no wait.
        let ok = unsafe { GetOverlappedResult(raw(file), &*self.overlapped, &mut transferred, 0) };
        if ok == 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(ERROR_IO_INCOMPLETE as i32) {
                return Ok(None);
            }
            self.pending = false;
            return Err(error);
        }
        self.pending = false;
        Ok(Some(transferred))
    }

    /// Cancels a pending operation and waits until the kernel has let go of the
    /// `OVERLAPPED` and the buffer, which may then be freed.
    fn cancel(&mut self, file: &OwnedHandle) {
        if !self.pending {
            return;
        }
        let mut transferred = 0u32;
        // SAFETY: the OVERLAPPED of an operation started on `file`; waiting (last
        // argument 1) returns once the cancelled operation has completed.
        unsafe {
            CancelIoEx(raw(file), &*self.overlapped);
            GetOverlappedResult(raw(file), &*self.overlapped, &mut transferred, 1);
        }
        self.pending = false;
    }
}

/// The supervisor's end of the control pipe: one instance always waits for the
/// next client (an overlapped `ConnectNamedPipe`), and its event joins [`poll`].
#[derive(Debug)]
pub struct PipeListener {
    name: Vec<u16>,
    security: PrivateSecurityHolder,
    waiting: PipeStream,
    connect: Op,
}

/// The descriptor kept for creating further instances.
struct PrivateSecurityHolder(PrivateSecurity);

impl std::fmt::Debug for PrivateSecurityHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateSecurity")
    }
}

// SAFETY: the descriptor is immutable memory owned by the holder, freed once.
unsafe impl Send for PrivateSecurityHolder {}

impl PipeListener {
    /// Creates the pipe's first instance. `FILE_FLAG_FIRST_PIPE_INSTANCE` makes this
    /// fail if the name exists already, so nobody can squat it and receive our
    /// clients' requests; the descriptor admits only the current user, so nobody
    /// else can connect or add an instance.
    pub fn create(name: &str) -> io::Result<PipeListener> {
        let security = PrivateSecurityHolder(PrivateSecurity::new(&UserSid::current()?, false)?);
        let name = wide(name);
        let waiting = new_instance(&name, &security.0, true)?;
        let mut listener = PipeListener {
            name,
            security,
            waiting,
            connect: Op::new()?,
        };
        listener.start_connect()?;
        Ok(listener)
    }

    fn start_connect(&mut self) -> io::Result<()> {
        let op = &mut self.connect;
        // SAFETY: a pipe instance opened for overlapped I/O and a boxed OVERLAPPED
        // that stays put until the operation completes or is cancelled (see Drop).
        let ok = unsafe { ConnectNamedPipe(raw(&self.waiting.handle), &mut *op.overlapped) };
        if ok != 0 {
            op.signal();
            return Ok(());
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error().map(|e| e as u32) {
            Some(ERROR_IO_PENDING) => op.pending = true,
            // A client connected between create and connect: ready now.
            Some(ERROR_PIPE_CONNECTED) => op.signal(),
            _ => return Err(error),
        }
        Ok(())
    }

    /// Signalled when a client has connected.
    pub fn handle(&self) -> BorrowedHandle<'_> {
        self.connect.event.as_handle()
    }

    /// The next connected client, or `WouldBlock`; never waits. A new instance
    /// takes over the waiting.
    pub fn accept(&mut self) -> io::Result<PipeStream> {
        if self.connect.pending {
            match self.connect.finish(&self.waiting.handle) {
                Ok(Some(_)) => {}
                Ok(None) => return Err(io::Error::from(io::ErrorKind::WouldBlock)),
                Err(e) => {
                    // That client is gone already: wait for the next one on a
                    // fresh instance.
                    self.waiting = new_instance(&self.name, &self.security.0, false)?;
                    self.start_connect()?;
                    return Err(e);
                }
            }
        }
        if !is_signalled(self.connect.event.as_handle()) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        let next = new_instance(&self.name, &self.security.0, false)?;
        let mut connected = std::mem::replace(&mut self.waiting, next);
        connected.connected_at = now_filetime();
        // SAFETY: a valid event handle; the next connect starts unsignalled.
        unsafe { ResetEvent(raw(&self.connect.event)) };
        self.start_connect()?;
        // A read in flight from the start, so that its event means "readable".
        connected.fill()?;
        Ok(connected)
    }
}

impl Drop for PipeListener {
    fn drop(&mut self) {
        self.connect.cancel(&self.waiting.handle);
    }
}

fn new_instance(name: &[u16], security: &PrivateSecurity, first: bool) -> io::Result<PipeStream> {
    let attributes = security.attributes();
    let first = if first {
        FILE_FLAG_FIRST_PIPE_INSTANCE
    } else {
        0
    };
    // SAFETY: a NUL-terminated name and attributes whose descriptor lives for the
    // call; returns a new handle or INVALID_HANDLE_VALUE.
    let handle = unsafe {
        owned_or_invalid(CreateNamedPipeW(
            name.as_ptr(),
            PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | first,
            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            PIPE_UNLIMITED_INSTANCES,
            PIPE_BUFFER,
            PIPE_BUFFER,
            0,
            &attributes,
        ))
    }?;
    PipeStream::new(handle, Side::Server)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

/// One control connection, either end. Reads and writes never wait: each starts an
/// overlapped operation and answers `WouldBlock` while it is in flight; the
/// operation's event ([`PipeStream::read_handle`], [`PipeStream::write_handle`])
/// is signalled when calling again will make progress.
#[derive(Debug)]
pub struct PipeStream {
    handle: OwnedHandle,
    side: Side,
    read: Op,
    read_buffer: Box<[u8]>,
    /// Bytes read and not yet handed out, and whether the peer has finished.
    unread: Vec<u8>,
    ended: bool,
    write: Op,
    write_buffer: Vec<u8>,
    /// When the server accepted the connection (100 ns since 1601): the peer's
    /// process must be older, or its PID was reused since.
    connected_at: u64,
}

/// How much one overlapped read asks for.
const READ_CHUNK: usize = 4096;

impl PipeStream {
    fn new(handle: OwnedHandle, side: Side) -> io::Result<PipeStream> {
        Ok(PipeStream {
            handle,
            side,
            read: Op::new()?,
            read_buffer: vec![0u8; READ_CHUNK].into_boxed_slice(),
            unread: Vec::new(),
            ended: false,
            write: Op::new()?,
            write_buffer: Vec::new(),
            connected_at: now_filetime(),
        })
    }

    /// Connects to the supervisor's pipe, waiting at most `timeout` for a free
    /// instance. The server may identify us but never act as us
    /// (`SECURITY_IDENTIFICATION`).
    pub fn connect(name: &str, timeout: Duration) -> io::Result<PipeStream> {
        let deadline = Instant::now() + timeout;
        let name = wide(name);
        loop {
            // SAFETY: a NUL-terminated name; returns a new handle or
            // INVALID_HANDLE_VALUE.
            let opened = unsafe {
                owned_or_invalid(CreateFileW(
                    name.as_ptr(),
                    GENERIC_READ | GENERIC_WRITE,
                    0,
                    std::ptr::null(),
                    OPEN_EXISTING,
                    FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                    std::ptr::null_mut(),
                ))
            };
            match opened {
                Ok(handle) => return PipeStream::new(handle, Side::Client),
                Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::from(io::ErrorKind::TimedOut));
                    }
                    // SAFETY: a NUL-terminated name and a bounded wait.
                    unsafe { WaitNamedPipeW(name.as_ptr(), wait_millis(Some(left))) };
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The PID of the process at the other end, as the pipe recorded it.
    pub fn peer_pid(&self) -> io::Result<Pid> {
        let mut pid = 0u32;
        // SAFETY: a valid pipe handle and one u32 that lives for the call.
        check(unsafe {
            match self.side {
                Side::Server => GetNamedPipeClientProcessId(raw(&self.handle), &mut pid),
                Side::Client => GetNamedPipeServerProcessId(raw(&self.handle), &mut pid),
            }
        })?;
        Pid::from_u32(pid).ok_or_else(|| io::Error::other("the pipe names no peer process"))
    }

    /// Whether the peer runs as the current user. The pipe gives only the peer's
    /// PID, so its process is opened and must have been created no later than the
    /// connection (else that PID was reused by another process since); its token's
    /// user is then compared with ours.
    pub fn peer_is_current_user(&self) -> io::Result<bool> {
        let pid = self.peer_pid()?;
        let process = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION)?;
        if creation_time(process.as_handle())?.0 > self.connected_at {
            return Ok(false);
        }
        Ok(token_user(raw(&process))? == UserSid::current()?)
    }

    /// Reads what is there without waiting: `Ok(0)` once the peer has closed,
    /// `WouldBlock` while a read is in flight (then [`PipeStream::read_handle`]
    /// is signalled when it completes).
    pub fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.unread.is_empty() && !self.ended {
            self.fill()?;
        }
        if self.unread.is_empty() {
            return if self.ended {
                Ok(0)
            } else {
                Err(io::Error::from(io::ErrorKind::WouldBlock))
            };
        }
        let n = out.len().min(self.unread.len());
        out[..n].copy_from_slice(&self.unread[..n]);
        self.unread.drain(..n);
        if self.unread.is_empty() && !self.ended {
            // Keep a read in flight: the finished one left the event signalled, and
            // only a new operation resets it, so that "signalled" keeps meaning
            // "read will make progress". Its error, if any, comes back next call.
            let _ = self.fill();
        }
        Ok(n)
    }

    /// Collects the result of the read in flight, or starts one.
    fn fill(&mut self) -> io::Result<()> {
        let done = if self.read.pending {
            self.read.finish(&self.handle)
        } else {
            self.start_read()
        };
        match done {
            Ok(Some(0)) | Ok(None) => Ok(()),
            Ok(Some(n)) => {
                self.unread
                    .extend_from_slice(&self.read_buffer[..n as usize]);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(ERROR_BROKEN_PIPE as i32) => {
                self.ended = true;
                self.read.signal();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn start_read(&mut self) -> io::Result<Option<u32>> {
        let op = &mut self.read;
        // SAFETY: an overlapped handle; the buffer and the OVERLAPPED are boxed and
        // stay in place until the read completes or is cancelled (see Drop).
        let ok = unsafe {
            ReadFile(
                raw(&self.handle),
                self.read_buffer.as_mut_ptr(),
                self.read_buffer.len() as u32,
                std::ptr::null_mut(),
                &mut *op.overlapped,
            )
        };
        let error = io::Error::last_os_error();
        op.pending = true;
        if ok == 0 && error.raw_os_error() != Some(ERROR_IO_PENDING as i32) {
            op.pending = false;
            return Err(error);
        }
        // Done at once or in flight: either way the result is collected the same.
        op.finish(&self.handle)
    }

    /// Writes without waiting. A write in flight answers `WouldBlock`; the caller
    /// then calls again later with the same remaining bytes (it may not change
    /// them), and gets the count once the write completed. This is how a client
    /// that does not read can never stall the writer.
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.write.pending {
            return match self.write.finish(&self.handle)? {
                Some(n) => Ok(n as usize),
                None => Err(io::Error::from(io::ErrorKind::WouldBlock)),
            };
        }
        let len = data.len().min(PIPE_BUFFER as usize);
        self.write_buffer.clear();
        self.write_buffer.extend_from_slice(&data[..len]);
        let op = &mut self.write;
        // SAFETY: an overlapped handle; `write_buffer` is not touched and the boxed
        // OVERLAPPED stays in place until the write completes or is cancelled.
        let ok = unsafe {
            WriteFile(
                raw(&self.handle),
                self.write_buffer.as_ptr(),
                len as u32,
                std::ptr::null_mut(),
                &mut *op.overlapped,
            )
        };
        let error = io::Error::last_os_error();
        op.pending = true;
        if ok == 0 && error.raw_os_error() != Some(ERROR_IO_PENDING as i32) {
            op.pending = false;
            return Err(error);
        }
        match op.finish(&self.handle)? {
            Some(n) => Ok(n as usize),
            None => Err(io::Error::from(io::ErrorKind::WouldBlock)),
        }
    }

    /// Signalled when [`PipeStream::read`] will make progress.
    pub fn read_handle(&self) -> BorrowedHandle<'_> {
        self.read.event.as_handle()
    }

    /// Signalled when [`PipeStream::write`] will make progress.
    pub fn write_handle(&self) -> BorrowedHandle<'_> {
        self.write.event.as_handle()
    }

    /// Writes all of `data`, waiting at most until `deadline` (for clients).
    pub fn write_all_until(&mut self, mut data: &[u8], deadline: Instant) -> io::Result<()> {
        while !data.is_empty() {
            match self.write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_until(Interest::Write, deadline)?
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until a `\n` (kept), the peer closes, or `limit` bytes, waiting at most
    /// until `deadline` (for clients).
    pub fn read_line_until(&mut self, limit: usize, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let mut chunk = [0u8; READ_CHUNK];
        while !line.contains(&b'\n') && line.len() < limit {
            match self.read(&mut chunk[..READ_CHUNK.min(limit - line.len())]) {
                Ok(0) => break,
                Ok(n) => line.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_until(Interest::Read, deadline)?
                }
                Err(e) => return Err(e),
            }
        }
        Ok(line)
    }

    fn wait_until(&self, interest: Interest, deadline: Instant) -> io::Result<()> {
        let handle = match interest {
            Interest::Read => self.read_handle(),
            Interest::Write => self.write_handle(),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !wait_any(&[handle], wait_millis(Some(left)))? {
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        Ok(())
    }
}

impl Drop for PipeStream {
    fn drop(&mut self) {
        self.read.cancel(&self.handle);
        self.write.cancel(&self.handle);
    }
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

    #[test]
    fn a_pipe_client_is_accepted_identified_and_answered() {
        let name = format!(r"\\.\pipe\ocwrap-test-{}", std::process::id());
        let mut listener = PipeListener::create(&name).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut client = PipeStream::connect(&name, Duration::from_secs(5)).unwrap();
        let woke = poll_readable(&[listener.handle()], Some(Duration::from_secs(5))).unwrap();
        assert_eq!(woke, [true], "no connection within 5 s");
        let mut server = listener.accept().unwrap();
        assert_eq!(server.peer_pid().unwrap(), Pid::current());
        assert!(server.peer_is_current_user().unwrap());
        assert!(client.peer_is_current_user().unwrap());
        client
            .write_all_until(b"{\"op\":\"status\"}\n", deadline)
            .unwrap();
        assert_eq!(
            server.read_line_until(1024, deadline).unwrap(),
            b"{\"op\":\"status\"}\n"
        );
        server
            .write_all_until(b"{\"ok\":true}\n", deadline)
            .unwrap();
        drop(server);
        assert_eq!(
            client.read_line_until(1024, deadline).unwrap(),
            b"{\"ok\":true}\n"
        );
        assert!(
            client.read_line_until(1024, deadline).unwrap().is_empty(),
            "the server closed: end of stream"
        );
    }

    #[test]
    fn waiting_on_many_handles_reports_every_ready_one() {
        let events: Vec<OwnedHandle> = (0..150).map(|_| manual_event().unwrap()).collect();
        for i in [3usize, 70, 149] {
            // SAFETY: a valid event handle.
            unsafe { SetEvent(raw(&events[i])) };
        }
        let handles: Vec<_> = events.iter().map(|e| e.as_handle()).collect();
        let ready = poll_readable(&handles, Some(Duration::from_secs(5))).unwrap();
        let which: Vec<usize> = (0..ready.len()).filter(|&i| ready[i]).collect();
        assert_eq!(which, [3, 70, 149]);
    }
}
