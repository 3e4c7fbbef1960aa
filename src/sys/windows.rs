//! Windows implementation of the platform seam.
//!
//! The same questions as on Unix, answered with handles and job objects:
//!
//! | question | Windows |
//! |---|---|
//! | who is this process (start time, parent, state)? | `GetProcessTimes` on a handle; parent and exe name from a Toolhelp snapshot, a parent younger than its child being a reused PID |
//! | has this owner gone? | its process handle (`SYNCHRONIZE`) is signalled: [`poll`] waits on it |
//! | keep the server (and its whole tree) from outliving us | a job with `KILL_ON_JOB_CLOSE`, joined while suspended ([`spawn_server`]) |
//! | contain the tree, list it, kill it | the job ([`Cgroup`]): its members, `TerminateJobObject`, its messages on a completion port |
//! | ask the server to stop | `CTRL_BREAK_EVENT` to its process group ([`signal`]) |
//! | who is at the other end of the control channel? | the pipe's client PID, its creation time and its token's user ([`ControlStream::peer_user`]) |
//! | was this file removed or replaced? | change notifications on its directory ([`FileWatch`]), then [`FileId`] |
//! | hand the config to `__supervise` | a private pipe whose client end it inherits ([`HandoffChannel`]) |
//! | open a state-dir entry safely | `FILE_FLAG_OPEN_REPARSE_POINT`, then a regular-file check |
//!
//! Every wake-up source is a waitable `HANDLE` that stays signalled while it is
//! ready (level-triggered, like `poll(2)`): a process handle once the process has
//! exited, a manual-reset event for everything else. Pipes and sockets join the
//! wait through such an event: a named pipe's pending overlapped `ConnectNamedPipe`,
//! `ReadFile` or `WriteFile` sets the event in its `OVERLAPPED` when it completes,
//! and a socket is tied to one with `WSAEventSelect` ([`Connection`]). Auto-reset
//! events must never be waited on: [`poll`] looks at every handle again after a
//! wake, and that look would consume them.
//!
//! Items with no Windows meaning keep their Unix signature and say so: no-ops
//! where the job object already gives the guarantee (`become_child_subreaper`),
//! `Unsupported` where the caller asked for something Windows cannot do
//! (`new_session`, a signal other than SIGKILL to one process). Every `unsafe`
//! block carries a `// SAFETY:` comment.

use std::cell::Cell;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, TcpStream};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::{FileTypeExt, OpenOptionsExt};
use std::os::windows::io::{
    AsHandle, AsRawHandle, AsRawSocket, BorrowedHandle, FromRawHandle, FromRawSocket,
    HandleOrInvalid, HandleOrNull, OwnedHandle, RawHandle, RawSocket,
};
use std::os::windows::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_BAD_EXE_FORMAT, ERROR_BROKEN_PIPE, ERROR_EXE_MACHINE_TYPE_MISMATCH,
    ERROR_FILE_NOT_FOUND, ERROR_INSUFFICIENT_BUFFER, ERROR_INVALID_NAME, ERROR_IO_INCOMPLETE,
    ERROR_IO_PENDING, ERROR_LOCK_VIOLATION, ERROR_MORE_DATA, ERROR_NO_SYSTEM_RESOURCES,
    ERROR_NOT_ENOUGH_MEMORY, ERROR_OUTOFMEMORY, ERROR_PATH_NOT_FOUND, ERROR_PIPE_BUSY,
    ERROR_PIPE_CONNECTED, ERROR_TOO_MANY_OPEN_FILES, FILETIME, GENERIC_READ, GENERIC_WRITE, HANDLE,
    HANDLE_FLAG_INHERIT, HLOCAL, LocalFree, SetHandleInformation, WAIT_ABANDONED_0, WAIT_FAILED,
    WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GetTcp6Table, GetTcpTable, MIB_TCP_STATE_ESTAB, MIB_TCP6TABLE, MIB_TCPTABLE,
};
use windows_sys::Win32::Networking::WinSock::{
    ADDRESS_FAMILY, AF_INET, AF_INET6, FD_CLOSE, FD_CONNECT, FD_CONNECT_BIT, FD_READ, FD_WRITE,
    INVALID_SOCKET, IPPROTO_TCP, SOCK_STREAM, SOCKADDR_IN, SOCKADDR_IN6, SOCKADDR_STORAGE, SOCKET,
    WSA_FLAG_NO_HANDLE_INHERIT, WSA_FLAG_OVERLAPPED, WSADATA, WSAEVENT, WSAEWOULDBLOCK,
    WSAEnumNetworkEvents, WSAEventSelect, WSAGetLastError, WSANETWORKEVENTS, WSASocketW,
    WSAStartup, connect,
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
    FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_TYPE_PIPE,
    FindCloseChangeNotification, FindFirstChangeNotificationW, FindNextChangeNotification,
    GetFileInformationByHandle, GetFileType, LOCK_FILE_FLAGS, LOCKFILE_EXCLUSIVE_LOCK,
    LOCKFILE_FAIL_IMMEDIATELY, LockFileEx, OPEN_EXISTING, PIPE_ACCESS_DUPLEX, ReadFile,
    SECURITY_IDENTIFICATION, SECURITY_SQOS_PRESENT, WriteFile,
};
use windows_sys::Win32::System::Console::{
    CTRL_BREAK_EVENT, CTRL_C_EVENT, GenerateConsoleCtrlEvent, GetStdHandle, STD_ERROR_HANDLE,
    STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, SetConsoleCtrlHandler,
};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW, TH32CS_SNAPPROCESS,
    TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
};
use windows_sys::Win32::System::IO::{
    CancelIoEx, CreateIoCompletionPort, GetOverlappedResult, GetQueuedCompletionStatus, OVERLAPPED,
    PostQueuedCompletionStatus,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_ASSOCIATE_COMPLETION_PORT, JOBOBJECT_BASIC_ACCOUNTING_INFORMATION,
    JOBOBJECT_BASIC_PROCESS_ID_LIST, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JobObjectAssociateCompletionPortInformation, JobObjectBasicAccountingInformation,
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
    CREATE_BREAKAWAY_FROM_JOB, CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW, CREATE_SUSPENDED,
    CreateEventW, GetCurrentProcess, GetExitCodeProcess, GetProcessTimes, INFINITE, OpenProcess,
    OpenProcessToken, OpenThread, PROCESS_ACCESS_RIGHTS, PROCESS_QUERY_LIMITED_INFORMATION,
    PROCESS_SYNCHRONIZE, PROCESS_TERMINATE, ResetEvent, ResumeThread, SetEvent,
    THREAD_SUSPEND_RESUME, TerminateProcess, WaitForMultipleObjects, WaitForSingleObject,
};

use crate::process::{Pid, ProcInfo, RunState, StartTime, Target};

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

// ---------------------------------------------------------------------------
// Owners and members: process handles.

/// A handle on one process (the Windows counterpart of a pidfd): it keeps naming
/// that process, and keeps its PID from being reused, for as long as it is open.
/// It is signalled once the process has exited, so [`poll`] can wait on it.
#[derive(Debug)]
pub struct PidFd(OwnedHandle);

impl PidFd {
    /// Opens `pid` for waiting and querying, and for terminating where we may (our
    /// own user's processes; an owner of another user is only waited on).
    pub fn open(pid: Pid) -> io::Result<PidFd> {
        let wait = PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION;
        open_process(pid, wait | PROCESS_TERMINATE)
            .or_else(|_| open_process(pid, wait))
            .map(PidFd)
    }

    pub fn try_clone(&self) -> io::Result<PidFd> {
        Ok(PidFd(self.0.try_clone()?))
    }

    /// "Signals" the process through its handle, so it reaches that process or
    /// nobody, never a newcomer with its PID. Windows has one signal a process
    /// cannot refuse: SIGKILL is `TerminateProcess`. SIGCONT has nothing to do (no
    /// process is stopped by a signal here). Every other signal is `Unsupported`:
    /// a graceful request goes to a process group ([`signal`]), not to a process.
    pub fn send_signal(&self, signal: Signal) -> io::Result<()> {
        match signal {
            SIGKILL => {
                // SAFETY: a valid process handle; the call checks its access rights.
                check(unsafe { TerminateProcess(raw(&self.0), KILLED_EXIT_CODE) })
            }
            SIGCONT => Ok(()),
            _ => Err(unsupported_signal(signal)),
        }
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

/// The exit code given to processes we kill (`TerminateProcess`,
/// `TerminateJobObject`): 128 + SIGKILL, as a shell reports a killed process.
const KILLED_EXIT_CODE: u32 = 137;

fn unsupported_signal(signal: Signal) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("signal {signal} has no Windows counterpart"),
    )
}

/// Sends `signal` to a process or a process group, as far as Windows has one:
///
/// - to a group (the server's, made with `CREATE_NEW_PROCESS_GROUP`), SIGTERM,
///   SIGHUP and SIGQUIT are the graceful request to stop, `CTRL_BREAK_EVENT`
///   ([`request_stop`]). SIGINT does nothing: Ctrl-C cannot be sent to another
///   group, and the one SIGINT ocwrap forwards (its own Ctrl-C, see
///   [`SignalInbox`]) is followed at once by teardown's SIGTERM, so the server gets
///   one Ctrl-Break, not two. SIGCONT does nothing either;
/// - to a process, SIGKILL is `TerminateProcess` (by PID: only for a process whose
///   identity the caller made sure of);
/// - anything else is `Unsupported`. PID 1 and group 1 are refused, as on Unix.
pub fn signal(target: Target, signal: Signal) -> io::Result<()> {
    if target.for_kill().is_none() {
        return Err(io::Error::from(io::ErrorKind::PermissionDenied));
    }
    match (target, signal) {
        (Target::ProcessGroup(group), SIGTERM | SIGHUP | SIGQUIT) => request_stop(group),
        (Target::ProcessGroup(_), SIGINT | SIGCONT) => Ok(()),
        (Target::Process(pid), SIGKILL) => PidFd::open(pid)?.send_signal(SIGKILL),
        _ => Err(unsupported_signal(signal)),
    }
}

/// Nothing to reap: Windows has no zombies, and a process's record goes when its
/// last handle closes. The server's own status comes from its handle
/// ([`ServerChild::reap`]).
pub fn reap(_pid: Pid) -> io::Result<Option<ExitStatus>> {
    Ok(None)
}

// ---------------------------------------------------------------------------
// Waiting.

/// What the event loop waits on: a waitable handle, signalled while ready (see
/// the module header).
pub type Waitable<'a> = BorrowedHandle<'a>;

/// Anything the loop can wait on by itself (a process handle).
pub trait AsWaitable {
    fn waitable(&self) -> Waitable<'_>;
}

impl<T: AsHandle> AsWaitable for T {
    fn waitable(&self) -> Waitable<'_> {
        self.as_handle()
    }
}

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
// Containment: the seam's `Cgroup` is a job object here.

/// The completion key of a job's own messages on its port.
const JOB_KEY: usize = 1;
/// The completion key that tells a job's watcher thread to end.
const STOP_KEY: usize = 2;
/// Job messages (`winnt.h`) that say a member exited, or that none is left.
const JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO: u32 = 4;
const JOB_OBJECT_MSG_EXIT_PROCESS: u32 = 7;
const JOB_OBJECT_MSG_ABNORMAL_EXIT_PROCESS: u32 = 8;

/// The server's containment: a [`Job`] that no member can leave and that the
/// kernel empties when its last handle (ours) closes, however ocwrap ends. It is
/// what the seam calls a cgroup: its members are the job's list, teardown ends
/// with `TerminateJobObject`, and a member's exit is an event (the job's messages
/// on a completion port, turned into a manual-reset event by a small thread,
/// since a port cannot join a wait).
///
/// A job has no path and cannot be opened by anyone else (it is unnamed): the path
/// it reports (`/job/<name>`) only names it in the record, and after ocwrap's death
/// there is nothing to clean up, since the kernel already killed every member.
#[derive(Debug)]
pub struct Cgroup {
    job: Job,
    path: PathBuf,
    changed: Arc<OwnedHandle>,
    port: Arc<OwnedHandle>,
}

impl Cgroup {
    /// A new job named `name` (in the record only), with its event thread.
    pub fn create(name: &str) -> io::Result<Cgroup> {
        let job = Job::new()?;
        let changed = Arc::new(manual_event()?);
        // SAFETY: a new completion port tied to no file; the handle is ours alone.
        let port = Arc::new(unsafe {
            owned_or_null(CreateIoCompletionPort(
                windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE,
                std::ptr::null_mut(),
                0,
                1,
            ))
        }?);
        let association = JOBOBJECT_ASSOCIATE_COMPLETION_PORT {
            CompletionKey: JOB_KEY as *mut std::ffi::c_void,
            CompletionPort: raw(&*port),
        };
        // SAFETY: a valid job handle and a structure of the size we pass that lives
        // for the call; the port outlives the job's use of it (see Drop).
        check(unsafe {
            SetInformationJobObject(
                raw(&job.0),
                JobObjectAssociateCompletionPortInformation,
                (&association as *const JOBOBJECT_ASSOCIATE_COMPLETION_PORT).cast(),
                size_of::<JOBOBJECT_ASSOCIATE_COMPLETION_PORT>() as u32,
            )
        })?;
        let (watched_port, signalled) = (Arc::clone(&port), Arc::clone(&changed));
        std::thread::Builder::new()
            .name("job-events".into())
            .spawn(move || forward_job_events(&watched_port, &signalled))?;
        Ok(Cgroup {
            job,
            path: PathBuf::from(format!("/job/{name}")),
            changed,
            port,
        })
    }

    /// Nothing to open: an unnamed job cannot be reached by another process, and
    /// the one a dead supervisor held was emptied by the kernel when it died.
    pub fn open_existing(_path: &Path, _name: &str) -> io::Result<Option<Cgroup>> {
        Ok(None)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `TerminateJobObject` kills every member at once.
    pub fn can_kill(&self) -> bool {
        true
    }

    /// Nothing to do before the spawn: [`spawn_server`] joins the server to the
    /// job while it is suspended, so not one of its instructions runs outside.
    pub fn enter_before_exec(&self, _command: &mut Command) -> io::Result<()> {
        Ok(())
    }

    pub fn members(&self) -> io::Result<Vec<Pid>> {
        self.job.members()
    }

    pub fn holds(&self, pid: Pid) -> io::Result<bool> {
        self.members().map(|m| m.contains(&pid))
    }

    /// Whether a member still runs. The change event is reset first, so an exit
    /// after this look sets it again and wakes the waiter.
    pub fn is_populated(&self) -> io::Result<bool> {
        // SAFETY: a valid event handle.
        unsafe { ResetEvent(raw(&*self.changed)) };
        Ok(self.job.active()? > 0)
    }

    /// Signalled when a member exited since the last [`Cgroup::is_populated`].
    pub fn events_fd(&self) -> Waitable<'_> {
        self.changed.as_handle()
    }

    pub fn kill(&self) -> io::Result<bool> {
        self.job.terminate(KILLED_EXIT_CODE)?;
        Ok(true)
    }

    /// Waits until no member runs, at most `timeout`; whether none does.
    pub fn wait_empty(&self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_populated()? {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            wait_any(&[self.events_fd()], wait_millis(Some(left)))?;
        }
    }

    /// Closes the job (its members are gone by now).
    pub fn remove(self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // SAFETY: a valid port handle; the message only tells the thread to end.
        unsafe { PostQueuedCompletionStatus(raw(&*self.port), 0, STOP_KEY, std::ptr::null()) };
    }
}

/// The body of a job's event thread: sets `changed` for each member's exit and
/// when none is left, until told to stop.
fn forward_job_events(port: &OwnedHandle, changed: &OwnedHandle) {
    loop {
        let (mut message, mut key) = (0u32, 0usize);
        let mut overlapped: *mut OVERLAPPED = std::ptr::null_mut();
        // SAFETY: a valid port handle and out-parameters that live for the call.
        let ok = unsafe {
            GetQueuedCompletionStatus(raw(port), &mut message, &mut key, &mut overlapped, INFINITE)
        };
        if ok == 0 || key == STOP_KEY {
            return;
        }
        let exit = matches!(
            message,
            JOB_OBJECT_MSG_EXIT_PROCESS
                | JOB_OBJECT_MSG_ABNORMAL_EXIT_PROCESS
                | JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO
        );
        if key == JOB_KEY && exit {
            // SAFETY: a valid event handle kept alive by the caller's Arc.
            unsafe { SetEvent(raw(changed)) };
        }
    }
}

/// No job is left behind by a dead supervisor (see [`Cgroup`]): none to list.
pub fn own_child_cgroups() -> io::Result<Vec<PathBuf>> {
    Ok(Vec::new())
}

/// Nothing to remove (see [`own_child_cgroups`]).
pub fn remove_empty_cgroup(_path: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "jobs are not left behind on Windows",
    ))
}

/// The jobs of servers started without a job of their own (`--contain group`):
/// kept open for ocwrap's whole life, so that those servers die with it too.
static PRIVATE_JOBS: Mutex<Vec<Job>> = Mutex::new(Vec::new());

/// The server as its supervisor knows it: its PID, and its process handle, which
/// keeps the PID from being reused until teardown ends and gives its exit status.
#[derive(Debug)]
pub struct ServerChild {
    pid: Pid,
    process: OwnedHandle,
}

impl ServerChild {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn has_exited(&self) -> io::Result<bool> {
        Ok(is_signalled(self.process.as_handle()))
    }

    /// Its status once it has exited. A process killed from outside reports the
    /// code its killer chose (under Wine: 0).
    pub fn reap(&self) -> io::Result<Option<ExitStatus>> {
        if !is_signalled(self.process.as_handle()) {
            return Ok(None);
        }
        let mut code = 0u32;
        // SAFETY: a valid process handle and one u32 that lives for the call.
        check(unsafe { GetExitCodeProcess(raw(&self.process), &mut code) })?;
        Ok(Some(ExitStatus::from_raw(code)))
    }

    /// Whether it has exited with status 0 (the handle keeps the status; nothing
    /// is reaped on Windows).
    pub fn exited_successfully(&self) -> bool {
        matches!(self.reap(), Ok(Some(status)) if status.success())
    }

    /// Its process handle: signalled once it has exited (no SIGCHLD here).
    pub fn exit_waitable(&self) -> Option<Waitable<'_>> {
        Some(self.process.as_handle())
    }
}

/// Starts the server suspended and in a new process group (so that
/// [`request_stop`] reaches it, and a Ctrl-C meant for ocwrap's console does not),
/// joins it to `cgroup`'s job (or, without one, to a job of its own that lives as
/// long as ocwrap) and only then lets it run: nothing it starts can be outside the
/// job, and the job dies with ocwrap. `session` means nothing more here (Windows
/// has no sessions to start); `supervisor` is unused: the job, not a parent check,
/// ties the server to us.
pub fn spawn_server(
    mut command: Command,
    _session: bool,
    _supervisor: Pid,
    cgroup: Option<&Cgroup>,
) -> io::Result<ServerChild> {
    command.creation_flags(CREATE_SUSPENDED | CREATE_NEW_PROCESS_GROUP);
    // The handoff handle was for this supervisor only.
    command.env_remove(HANDOFF_ENV);
    keep_stdio_private();
    // The private job is made before the spawn: a failure to make it must not
    // leave a suspended child that nobody adopts.
    let private = cgroup.is_none().then(Job::new).transpose()?;
    let child = command.spawn()?;
    if let Some(cgroup) = cgroup {
        cgroup.job.adopt(&child)?;
    }
    if let Some(job) = private {
        job.adopt(&child)?;
        PRIVATE_JOBS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(job);
    }
    let pid = Pid::from_u32(child.id()).ok_or_else(|| io::Error::other("child has no pid"))?;
    Ok(ServerChild {
        pid,
        process: OwnedHandle::from(child),
    })
}

/// Makes this process's own standard handles non-inheritable. Windows hands every
/// inheritable handle to every child (std spawns with `bInheritHandles`), and the
/// standard handles a process got from its parent stay inheritable: a supervisor
/// would pass `up`'s stdout pipe on to the server, and whoever reads that pipe
/// would wait for its end as long as the server runs. What a child is meant to get
/// std passes as inheritable copies made for the spawn, so this takes nothing from
/// it.
fn keep_stdio_private() {
    for which in [STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE] {
        // SAFETY: plain value; returns our standard handle, NULL or INVALID.
        let handle = unsafe { GetStdHandle(which) };
        if !handle.is_null() && handle != windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE {
            // SAFETY: a handle of this process; only its inheritance flag changes
            // (a console pseudo-handle refuses, which is fine: it is not inherited).
            unsafe { SetHandleInformation(handle, HANDLE_FLAG_INHERIT, 0) };
        }
    }
}

/// Whether a spawn failed because the command does not exist (exit 127).
pub fn command_not_found(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error().map(|e| e as u32),
        Some(ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND | ERROR_INVALID_NAME)
    )
}

/// Whether a spawn failed because the command cannot be executed (exit 126).
pub fn command_not_executable(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error().map(|e| e as u32),
        Some(ERROR_ACCESS_DENIED | ERROR_BAD_EXE_FORMAT | ERROR_EXE_MACHINE_TYPE_MISMATCH)
    )
}

/// Not offered: Windows passes one command line, whose first word the program
/// parses itself; there is no separate argv[0] to set.
pub fn set_arg0(_command: &mut Command, _arg0: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "Windows has no argv[0] apart from the program",
    ))
}

/// No-op: Windows has no subreaper. The job is what keeps every descendant in
/// ocwrap's tree, wherever its parent went.
pub fn become_child_subreaper() -> io::Result<()> {
    Ok(())
}

/// Processes in exit-watch sets, and other handles, watched together. Windows has
/// no handle that stands for a set of handles, so [`EventSet::waitables`] gives all
/// of them (and [`poll`] waits on any number). A watched process's handle is a
/// copy, dropped once [`EventSet::ready`] has reported its exit: an exited process
/// stays signalled, and would keep waking the loop.
#[derive(Debug, Default)]
pub struct EventSet {
    watched: Vec<Watched>,
}

#[derive(Debug)]
struct Watched {
    key: u64,
    handle: OwnedHandle,
    /// A process's exit (reported once) rather than a change (reported while set).
    exit: bool,
}

impl EventSet {
    pub fn new() -> io::Result<EventSet> {
        Ok(EventSet::default())
    }

    /// Ready once the process behind `pidfd` has exited.
    pub fn watch_exit(&mut self, pidfd: &PidFd, key: u64) -> io::Result<()> {
        self.watched.push(Watched {
            key,
            handle: pidfd.0.try_clone()?,
            exit: true,
        });
        Ok(())
    }

    /// Ready while `waitable` (a job's change event) is signalled.
    pub fn watch_change(&mut self, waitable: Waitable<'_>, key: u64) -> io::Result<()> {
        self.watched.push(Watched {
            key,
            handle: waitable.try_clone_to_owned()?,
            exit: false,
        });
        Ok(())
    }

    /// The keys of the watched handles that are signalled now, without waiting.
    pub fn ready(&mut self, _watched: usize) -> io::Result<Vec<u64>> {
        let mut ready = Vec::new();
        self.watched.retain(|w| {
            let signalled = is_signalled(w.handle.as_handle());
            if signalled {
                ready.push(w.key);
            }
            !(signalled && w.exit)
        });
        Ok(ready)
    }

    /// Every handle of the set, to wait on together.
    pub fn waitables(&self) -> Vec<Waitable<'_>> {
        self.watched.iter().map(|w| w.handle.as_handle()).collect()
    }
}

/// A job object that holds the server and everything it starts. Its only handle is
/// ours, and it is created with `KILL_ON_JOB_CLOSE`: when that handle closes — we
/// exit, crash, or are killed, however — the kernel terminates every process in the
/// job, grandchildren included. No descendant can leave it: breakaway is not
/// allowed, so `CREATE_BREAKAWAY_FROM_JOB` fails.
#[derive(Debug)]
struct Job(OwnedHandle);

impl Job {
    fn new() -> io::Result<Job> {
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

    /// Puts a child that was created suspended (see [`spawn_server`]) into
    /// the job, then lets it run: not one of its instructions runs outside the job,
    /// so nothing it starts can be outside it either. If it cannot join, it is
    /// terminated before it ever ran, never left running unconfined.
    fn adopt(&self, child: &Child) -> io::Result<()> {
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
    fn members(&self) -> io::Result<Vec<Pid>> {
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
    fn active(&self) -> io::Result<u32> {
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
    fn terminate(&self, exit_code: u32) -> io::Result<()> {
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

// ---------------------------------------------------------------------------
// Signals: the vocabulary, and ocwrap's own console events.

/// A signal number. Windows has no signals; the portable code speaks POSIX's
/// vocabulary, with Linux's numbers (so that exit codes read 128 + n as there),
/// and this file says what each means here: see [`signal`], [`PidFd::send_signal`]
/// and [`SignalInbox`].
pub type Signal = i32;

pub const SIGHUP: Signal = 1;
pub const SIGINT: Signal = 2;
pub const SIGQUIT: Signal = 3;
pub const SIGKILL: Signal = 9;
pub const SIGUSR1: Signal = 10;
pub const SIGUSR2: Signal = 12;
pub const SIGTERM: Signal = 15;
pub const SIGCHLD: Signal = 17;
pub const SIGCONT: Signal = 18;
pub const SIGTTIN: Signal = 21;
pub const SIGTTOU: Signal = 22;
pub const SIGWINCH: Signal = 28;

/// ocwrap's own "signals": Ctrl-C, Ctrl-Break and console close (and logoff and
/// shutdown), through `ctrlc`, which cannot tell them apart. Each arrives as SIGINT
/// (a request to stop, as from a terminal). They come on a thread of their own;
/// this turns them into a list and a manual-reset event the loop waits on. On
/// console close Windows gives the handler about 5 s before it kills ocwrap; then
/// the job's handle closes and the tree goes with it anyway. No other signal of
/// the vocabulary ever arrives (the server's exit wakes the loop through its
/// handle: [`ServerChild::exit_waitable`]).
#[derive(Debug)]
pub struct SignalInbox {
    event: Arc<OwnedHandle>,
    pending: Arc<Mutex<Vec<Signal>>>,
}

impl SignalInbox {
    /// Installs the console handler if SIGINT is among `signals`. `ctrlc` allows
    /// one handler per process: a second call fails.
    pub fn install(signals: &[Signal]) -> io::Result<SignalInbox> {
        let event = Arc::new(manual_event()?);
        let pending = Arc::new(Mutex::new(Vec::new()));
        if signals.contains(&SIGINT) {
            let (set, arrived) = (Arc::clone(&event), Arc::clone(&pending));
            ctrlc::set_handler(move || {
                let mut arrived = arrived.lock().unwrap_or_else(PoisonError::into_inner);
                if !arrived.contains(&SIGINT) {
                    arrived.push(SIGINT);
                }
                // SAFETY: a valid event handle kept alive by the Arc.
                unsafe { SetEvent(raw(&*set)) };
            })
            .map_err(io::Error::other)?;
        }
        Ok(SignalInbox { event, pending })
    }

    /// Signalled while a console event is pending.
    pub fn waitable(&self) -> Waitable<'_> {
        self.event.as_handle()
    }

    /// The events that arrived since the last call. The event is reset before the
    /// list is taken, so one arriving in between is never lost (at worst it causes
    /// one empty wake-up).
    pub fn drain(&mut self) -> Vec<Signal> {
        // SAFETY: a valid event handle.
        unsafe { ResetEvent(raw(&*self.event)) };
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The graceful request to stop: `CTRL_BREAK_EVENT` to the server's process group
/// (the server's PID; see [`spawn_server`]). It reaches only processes attached to
/// ocwrap's console; a server without one gets nothing, and teardown goes on to
/// `TerminateJobObject` after the grace. Wine does not implement it, so it is
/// untested there.
fn request_stop(group: Pid) -> io::Result<()> {
    let group =
        u32::try_from(group.get()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain values; a group is never 0 (every process on our console).
    check(unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group) })
}

/// Test fixtures: not offered (a process can only be sent console events, which
/// Wine does not deliver to groups).
pub fn on_signals(
    _signals: &[Signal],
    _handler: impl FnMut(Signal) + Send + 'static,
) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no signals on Windows",
    ))
}

/// Test fixtures: ignores the console's requests to stop (Ctrl-Break, what
/// [`signal`] sends for SIGTERM, and Ctrl-C from the console), as a server with a slow or broken
/// shutdown does. Other signals are never delivered here: nothing to catch.
pub fn catch_signal(signal: Signal) -> io::Result<()> {
    unsafe extern "system" fn ignore_stop(event: u32) -> windows_sys::core::BOOL {
        i32::from(event == CTRL_C_EVENT || event == CTRL_BREAK_EVENT)
    }
    match signal {
        // SAFETY: registers a handler that touches no memory and may run on any
        // thread.
        SIGINT | SIGTERM => check(unsafe { SetConsoleCtrlHandler(Some(ignore_stop), 1) }),
        _ => Ok(()),
    }
}

/// Never: a Windows process ends with an exit code, however it ends.
pub fn exit_signal(_status: &ExitStatus) -> Option<i32> {
    None
}

/// No-op: there are no job-control signals (SIGTTIN/SIGTTOU) on Windows.
pub fn ignore_signal(_signal: Signal) -> io::Result<()> {
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

/// Whether `error` says the process is out of descriptors: Windows sets no such
/// limit on handles.
pub fn is_out_of_descriptors(_error: &io::Error) -> bool {
    false
}

/// A reserve for a process out of descriptors: Windows has no descriptor limit,
/// so there is nothing to hold (see the Unix counterpart).
#[derive(Debug, Default)]
pub struct DescriptorReserve;

impl DescriptorReserve {
    pub fn new() -> DescriptorReserve {
        DescriptorReserve
    }

    /// Runs `f`.
    pub fn lend<T>(&mut self, f: impl FnOnce() -> T) -> T {
        f()
    }
}

/// Test fixtures only: not offered (no `fork`).
pub fn fork_idle_children(_count: usize) -> io::Result<Vec<Pid>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no fork on Windows",
    ))
}

/// Test fixture: ends the calling thread and nothing else.
pub fn exit_this_thread() -> ! {
    // SAFETY: ExitThread ends only the calling thread and never returns; the
    // other threads own everything they use.
    unsafe { windows_sys::Win32::System::Threading::ExitThread(0) }
}

/// Test fixtures only: nothing is ever pending (no signals).
pub fn pending_signals(_pid: Pid) -> Option<u64> {
    None
}

/// Writes one diagnostic line to stderr without letting a stalled reader block the
/// caller for long.
///
/// Windows cannot say whether a pipe write would block (a pipe's free-space figure
/// shrinks by the size of the reader's pending read, so a reader that waits reads
/// as "full"). So lines are written by one writer thread, and the caller waits for
/// its line at most [`STDERR_WAIT`] (so that a command's last words reach a reader
/// before it exits). While a line is stuck in that thread (nobody reads stderr),
/// further lines are dropped at once, as on Unix when stderr is not writable.
pub fn write_stderr_line(line: &[u8]) {
    static WRITER: OnceLock<Option<StderrWriter>> = OnceLock::new();
    static BUSY: AtomicBool = AtomicBool::new(false);
    let writer = WRITER.get_or_init(|| {
        let (lines, receive) = mpsc::channel::<Vec<u8>>();
        let (ack, done) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("stderr".into())
            .spawn(move || {
                for line in receive {
                    let _ = io::stderr().lock().write_all(&line);
                    // Acknowledged before the next caller may get in, so that the
                    // next caller drains this ack instead of taking it for its own.
                    let _ = ack.send(());
                    BUSY.store(false, Ordering::SeqCst);
                }
            })
            .ok()
            .map(|_| StderrWriter {
                lines,
                done: Mutex::new(done),
            })
    });
    let Some(writer) = writer else {
        return;
    };
    if BUSY.swap(true, Ordering::SeqCst) {
        return;
    }
    let done = writer.done.lock().unwrap_or_else(PoisonError::into_inner);
    while done.try_recv().is_ok() {}
    if writer.lines.send(line.to_vec()).is_err() {
        BUSY.store(false, Ordering::SeqCst);
        return;
    }
    let _ = done.recv_timeout(STDERR_WAIT);
}

/// How long a diagnostic line may take to be written (see [`write_stderr_line`]).
const STDERR_WAIT: Duration = Duration::from_millis(100);

/// The stderr writer thread's queue, and its word that a line is out.
#[derive(Debug)]
struct StderrWriter {
    lines: mpsc::Sender<Vec<u8>>,
    done: Mutex<mpsc::Receiver<()>>,
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
fn file_owner(path: &Path) -> io::Result<UserSid> {
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

/// Why an existing state dir cannot be trusted, if it cannot: another user owns
/// it (or its owner cannot be read). Its access list is not examined: a dir ocwrap
/// made admits only its user (see [`create_private_dir`]); one made otherwise by
/// the same user is trusted as the user's own.
pub fn private_dir_problem(path: &Path, _meta: &fs::Metadata) -> Option<&'static str> {
    match file_owner(path) {
        Ok(owner) if owner == current_user() => None,
        Ok(_) => Some("is owned by another user"),
        Err(_) => Some("has an owner that cannot be read"),
    }
}

/// Where records, locks and logs live by default: `%LOCALAPPDATA%\ocwrap`, which is
/// per user (the temp dir is not private on every Windows set-up), else
/// `ocwrap` in the temp dir.
/// Only an absolute `LOCALAPPDATA` counts: a relative one would give every working
/// directory a state dir of its own.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("LOCALAPPDATA")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(std::env::temp_dir)
        .join("ocwrap")
}

/// Opens (creating) the log for appending. Opening a file never blocks on Windows,
/// and a named pipe without a free instance fails at once (`ERROR_PIPE_BUSY`).
pub fn open_log(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new().create(true).append(true).open(path)
}

// ---------------------------------------------------------------------------
// Locks: a byte-range lock far beyond the data.

/// Where the lock byte is. Windows byte-range locks are mandatory: a reader of a
/// locked range fails. The claim written at the start of a lock file must stay
/// readable by everyone while the lock is held, so the lock is taken on one byte
/// far beyond anything ever written there (a lock may lie past the end of a file).
const LOCK_AT: u64 = 1 << 62;

fn lock_byte(file: &File, flags: LOCK_FILE_FLAGS) -> io::Result<bool> {
    // SAFETY: plain data; all-zero is a valid value before the offset is set.
    let mut at: OVERLAPPED = unsafe { zeroed() };
    at.Anonymous.Anonymous.Offset = LOCK_AT as u32;
    at.Anonymous.Anonymous.OffsetHigh = (LOCK_AT >> 32) as u32;
    // SAFETY: a valid file handle opened for synchronous I/O (the call completes,
    // or fails, before it returns) and an OVERLAPPED that lives for the call.
    let ok = unsafe { LockFileEx(raw(file), flags, 0, 1, 0, &mut at) };
    if ok != 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if flags & LOCKFILE_FAIL_IMMEDIATELY != 0
        && error.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32)
    {
        return Ok(false);
    }
    Err(error)
}

/// Takes the exclusive lock on `file`, waiting for it. Released when the file is
/// closed (Wine's `UnlockFileEx` reports an error although it releases).
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    lock_byte(file, LOCKFILE_EXCLUSIVE_LOCK).map(|_| ())
}

/// Takes the exclusive lock on `file` if nobody holds it; `false` when someone does.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    lock_byte(file, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY)
}

/// Takes a shared lock on `file`, waiting while someone holds it exclusively.
pub fn lock_shared(file: &File) -> io::Result<()> {
    lock_byte(file, 0).map(|_| ())
}

/// Takes a shared lock on `file` unless someone holds it exclusively (`false`).
pub fn try_lock_shared(file: &File) -> io::Result<bool> {
    lock_byte(file, LOCKFILE_FAIL_IMMEDIATELY)
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

/// Whether a call failed for want of resources (handles, memory) rather than
/// because of what it looked at (see the Unix seam).
pub fn is_resource_shortage(error: &io::Error) -> bool {
    error.raw_os_error().is_some_and(|code| {
        matches!(
            code as u32,
            ERROR_TOO_MANY_OPEN_FILES
                | ERROR_NOT_ENOUGH_MEMORY
                | ERROR_OUTOFMEMORY
                | ERROR_NO_SYSTEM_RESOURCES
        )
    })
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
    pub fn waitables(&self) -> Vec<Waitable<'_>> {
        self.notifications
            .iter()
            .map(|n| {
                // SAFETY: the handle is open for as long as `self` keeps the
                // notification.
                unsafe { BorrowedHandle::borrow_raw(n.handle) }
            })
            .collect()
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
const MAX_PIPE_NAME: usize = 256;

/// Each side's pipe buffer: far above one request (64 KiB at most) is not needed,
/// and a reply larger than it is written in pieces as the client reads.
const PIPE_BUFFER: u32 = 64 * 1024;

/// A pipe name of our own: `\\.\pipe\ocwrap-<SID>-<what>-<pid>-<n>`, unique among
/// live processes (a PID is). The user's SID keeps users apart; the pipe's
/// descriptor (see [`PipeListener::create`]) makes it private.
fn unique_pipe_name(what: &str) -> io::Result<String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        r"\\.\pipe\ocwrap-{}-{what}-{}-{}",
        UserSid::current()?.to_string_form()?,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    if name.len() > MAX_PIPE_NAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pipe name too long",
        ));
    }
    Ok(name)
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

// SAFETY: an `Op` is used by one thread at a time (its owner's); its OVERLAPPED
// holds only our own event handle and offsets, valid in any thread.
unsafe impl Send for Op {}

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
struct PipeListener {
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
    fn create(name: &str) -> io::Result<PipeListener> {
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
    fn handle(&self) -> BorrowedHandle<'_> {
        self.connect.event.as_handle()
    }

    /// The next connected client, `None` while there is none; never waits. A new
    /// instance takes over the waiting. A client that went away before it was
    /// accepted is skipped (`None`: the next one wakes the loop again).
    fn accept(&mut self) -> io::Result<Option<PipeStream>> {
        if self.connect.pending {
            match self.connect.finish(&self.waiting.handle) {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(None),
                Err(_) => {
                    self.waiting = new_instance(&self.name, &self.security.0, false)?;
                    self.start_connect()?;
                    return Ok(None);
                }
            }
        }
        if !is_signalled(self.connect.event.as_handle()) {
            return Ok(None);
        }
        let next = new_instance(&self.name, &self.security.0, false)?;
        let mut connected = std::mem::replace(&mut self.waiting, next);
        connected.connected_at = now_filetime();
        // SAFETY: a valid event handle; the next connect starts unsignalled.
        unsafe { ResetEvent(raw(&self.connect.event)) };
        self.start_connect()?;
        // A read in flight from the start, so that its event means "readable". A
        // failure (the client left already) comes back from the first read.
        if connected.fill().is_err() {
            connected.ended = true;
            connected.read.signal();
        }
        Ok(Some(connected))
    }

    /// Waits at most `timeout` for the next client (for a channel's first one).
    fn accept_within(&mut self, timeout: Duration) -> io::Result<PipeStream> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(stream) = self.accept()? {
                return Ok(stream);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !wait_any(&[self.handle()], wait_millis(Some(left)))? {
                return Err(io::Error::from(io::ErrorKind::TimedOut));
            }
        }
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
struct PipeStream {
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
    fn connect(name: &str, timeout: Duration) -> io::Result<PipeStream> {
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
    fn peer_pid(&self) -> io::Result<Pid> {
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

    /// The user the peer runs as. The pipe gives only the peer's PID, so its
    /// process is opened and must have been created no later than the connection
    /// (else that PID was reused by another process since); its token's user is
    /// the answer.
    fn peer_user(&self) -> io::Result<UserSid> {
        let pid = self.peer_pid()?;
        let process = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION)?;
        if creation_time(process.as_handle())?.0 > self.connected_at {
            return Err(io::Error::other("the peer's PID was reused"));
        }
        token_user(raw(&process))
    }

    /// Reads what is there without waiting: `Ok(0)` once the peer has closed,
    /// `WouldBlock` while a read is in flight (then [`PipeStream::read_handle`]
    /// is signalled when it completes).
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
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
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
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
    fn read_handle(&self) -> BorrowedHandle<'_> {
        self.read.event.as_handle()
    }

    /// Signalled when [`PipeStream::write`] will make progress.
    fn write_handle(&self) -> BorrowedHandle<'_> {
        self.write.event.as_handle()
    }

    /// Writes all of `data`, waiting at most until `deadline` (for clients).
    fn write_all_until(&mut self, mut data: &[u8], deadline: Instant) -> io::Result<()> {
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
    fn read_line_until(&mut self, limit: usize, deadline: Instant) -> io::Result<Vec<u8>> {
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

// ---------------------------------------------------------------------------
// The control channel: a named pipe per registration, named by a file.

/// Who runs a process: a user's security identifier.
pub type UserId = UserSid;

impl std::fmt::Display for UserSid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_string_form() {
            Ok(text) => f.write_str(&text),
            Err(_) => f.write_str("(unreadable SID)"),
        }
    }
}

/// The user this process runs as. Read once; if it cannot be read, an empty SID
/// that no peer ever matches (every control client is then refused).
pub fn current_user() -> UserId {
    static CURRENT: OnceLock<UserSid> = OnceLock::new();
    CURRENT
        .get_or_init(|| UserSid::current().unwrap_or(UserSid(Vec::new())))
        .clone()
}

/// Longest control path: the path of the file naming the pipe (Windows paths, with
/// std's long-path support).
pub const MAX_CONTROL_PATH: usize = 32_000;

/// The prefix of every pipe name ocwrap makes (see [`unique_pipe_name`]).
const PIPE_PREFIX: &str = r"\\.\pipe\ocwrap-";

/// The supervisor's control endpoint. Windows has no Unix sockets (and Wine no
/// AF_UNIX at all), so it is a named pipe ([`PipeListener`]: private to the user,
/// its first instance ours), and the file at the control path names it. The file
/// gives the endpoint what the portable code expects of a socket: an identity, a
/// place in the state dir that can be watched, replaced and removed. A new bind
/// makes a new pipe, so re-registering never collides with the pipe still open.
#[derive(Debug)]
pub struct ControlListener(PipeListener);

impl ControlListener {
    /// Makes a new pipe and the file at `path` (which must not exist) naming it.
    pub fn bind(path: &Path) -> io::Result<ControlListener> {
        let name = unique_pipe_name("control")?;
        let listener = PipeListener::create(&name)?;
        let mut file = state_entry_options()
            .write(true)
            .create_new(true)
            .open(path)?;
        file.write_all(name.as_bytes())?;
        Ok(ControlListener(listener))
    }

    /// The next connected client, without waiting: `None` when there is none.
    pub fn accept(&mut self) -> Option<io::Result<ControlStream>> {
        match self.0.accept() {
            Ok(Some(stream)) => Some(Ok(ControlStream(stream))),
            Ok(None) => None,
            // The pipe could not be re-armed (out of handles, say): nothing is
            // accepted now, and the connect event stays set, so the loop asks
            // again at its next turn; the registration's own checks notice a
            // control endpoint that is gone.
            Err(_) => None,
        }
    }

    /// Never: a named pipe instance is made before a client connects, so a
    /// connection never waits on a handle we cannot open (see the Unix seam).
    pub fn took_reserve(&self) -> bool {
        false
    }

    /// Signalled when a client has connected.
    pub fn waitable(&self) -> Waitable<'_> {
        self.0.handle()
    }
}

/// No limit on handles that a control client could use up (the Unix seam caps
/// clients below its descriptor limit).
pub fn descriptor_limit() -> Option<u64> {
    None
}

/// The pipe named by the control file at `path`: a regular file of our own, holding
/// one of ocwrap's pipe names.
fn pipe_named_at(path: &Path) -> io::Result<String> {
    let file = state_entry_options().read(true).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > MAX_PIPE_NAME as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} does not name a control pipe", path.display()),
        ));
    }
    let mut name = String::new();
    io::Read::read_to_string(&mut &file, &mut name)?;
    if !name.starts_with(PIPE_PREFIX) || name[PIPE_PREFIX.len()..].contains(['\\', '/']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} does not name a control pipe", path.display()),
        ));
    }
    Ok(name)
}

/// One control connection, non-blocking.
#[derive(Debug)]
pub struct ControlStream(PipeStream);

impl ControlStream {
    /// Two connected ends, both non-blocking (for tests).
    pub fn pair() -> io::Result<(ControlStream, ControlStream)> {
        let name = unique_pipe_name("pair")?;
        let mut listener = PipeListener::create(&name)?;
        let client = PipeStream::connect(&name, PAIR_WAIT)?;
        let server = listener.accept_within(PAIR_WAIT)?;
        Ok((ControlStream(server), ControlStream(client)))
    }

    /// A client's end, connected to the pipe the file at `path` names (waiting
    /// up to 5 s for a free instance).
    pub fn connect(path: &Path) -> io::Result<ControlStream> {
        PipeStream::connect(&pipe_named_at(path)?, PAIR_WAIT).map(ControlStream)
    }

    /// Signalled when a read (`Read`) or a write (`Write`) will make progress.
    pub fn waitable(&self, interest: Interest) -> Waitable<'_> {
        match interest {
            Interest::Read => self.0.read_handle(),
            Interest::Write => self.0.write_handle(),
        }
    }

    /// Reads what has arrived: `Ok(0)` once the peer closed, `WouldBlock` when
    /// nothing has arrived yet.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }

    /// Writes without waiting (see [`PipeStream::write`]).
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    /// Writes all of `data`, waiting for room at most until `deadline`.
    pub fn write_all_until(&mut self, data: &[u8], deadline: Instant) -> io::Result<()> {
        self.0.write_all_until(data, deadline)
    }

    /// Reads until a newline (kept), the end of the stream, or `limit` bytes,
    /// waiting at most until `deadline`.
    pub fn read_line_until(&mut self, limit: usize, deadline: Instant) -> io::Result<Vec<u8>> {
        self.0.read_line_until(limit, deadline)
    }

    /// The user at the other end (see [`PipeStream::peer_user`]).
    pub fn peer_user(&self) -> io::Result<UserId> {
        self.0.peer_user()
    }

    /// The process at the other end, as the pipe recorded it (Windows has no PID
    /// namespaces: always `Some`).
    pub fn peer_pid(&self) -> io::Result<Option<Pid>> {
        self.0.peer_pid().map(Some)
    }
}

/// How long a pipe pair may take to connect (both ends are in this process).
const PAIR_WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// The handoff from `up` to `__supervise`: a private pipe whose client end the
// supervisor inherits.

/// The environment variable that gives `__supervise` its inherited handle.
const HANDOFF_ENV: &str = "OCWRAP_HANDOFF_HANDLE";

/// How long a handoff line may take to be written (the other side reads at once).
const HANDOFF_WRITE_WAIT: Duration = Duration::from_secs(10);

/// One end of the handoff channel: a connected pipe.
#[derive(Debug)]
pub struct HandoffChannel(PipeStream);

impl HandoffChannel {
    /// Two connected ends: ours (the pipe's server end), and the one for the child.
    pub fn pair() -> io::Result<(HandoffChannel, HandoffChannel)> {
        let name = unique_pipe_name("handoff")?;
        let mut listener = PipeListener::create(&name)?;
        let theirs = PipeStream::connect(&name, PAIR_WAIT)?;
        let ours = listener.accept_within(PAIR_WAIT)?;
        Ok((HandoffChannel(ours), HandoffChannel(theirs)))
    }

    /// The end `up` handed to this process (`__supervise`): the handle named by
    /// [`HANDOFF_ENV`], made non-inheritable at once so that the server never gets
    /// it (`up` must see the channel end when the supervisor ends).
    pub fn take() -> io::Result<HandoffChannel> {
        let not_handed = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "no channel from ocwrap up was handed to this process",
            )
        };
        let value = std::env::var(HANDOFF_ENV).map_err(|_| not_handed())?;
        let handle = value.parse::<usize>().map_err(|_| not_handed())? as HANDLE;
        // SAFETY: asks about a handle value; an invalid one is FILE_TYPE_UNKNOWN.
        if unsafe { GetFileType(handle) } != FILE_TYPE_PIPE {
            return Err(not_handed());
        }
        // SAFETY: the handle was just shown to be an open pipe of this process.
        check(unsafe { SetHandleInformation(handle, HANDLE_FLAG_INHERIT, 0) })?;
        // SAFETY: an open pipe handle inherited at creation for exactly this use;
        // nothing else in this process owns it.
        let owned = unsafe { OwnedHandle::from_raw_handle(handle as RawHandle) };
        PipeStream::new(owned, Side::Client).map(HandoffChannel)
    }

    /// Sends one line (`line` ends in a newline).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.0
            .write_all_until(line, Instant::now() + HANDOFF_WRITE_WAIT)
    }

    /// The next line (newline kept), at most `limit` bytes, waiting until
    /// `deadline`: empty once the other end closed; `TimedOut` when the deadline
    /// passed.
    pub fn read_line_until(&mut self, limit: u64, deadline: Instant) -> io::Result<Vec<u8>> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        self.0.read_line_until(limit, deadline)
    }
}

/// A supervisor `up` started.
#[derive(Debug)]
pub struct Detached(Child);

impl Detached {
    /// Waits for it to exit.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.0.wait()
    }

    /// Kills it and waits for it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` (`ocwrap __supervise`) detached: in a new process group and
/// without the caller's console (a console of its own, hidden), so that neither
/// Ctrl-C nor closing the caller's console reaches it, and out of the caller's job
/// where that job allows it. `channel` is inherited (its handle value in
/// [`HANDOFF_ENV`]); our copy is closed once the child runs, so that its exit ends
/// the channel.
pub fn spawn_detached(mut command: Command, channel: HandoffChannel) -> io::Result<Detached> {
    let handle = raw(&channel.0.handle);
    // SAFETY: a valid handle of ours; only its inheritance flag changes.
    check(unsafe { SetHandleInformation(handle, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT) })?;
    command.env(HANDOFF_ENV, (handle as usize).to_string());
    let flags = CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW;
    command.creation_flags(flags | CREATE_BREAKAWAY_FROM_JOB);
    keep_stdio_private();
    let child = match command.spawn() {
        // In a job that does not allow breakaway: stay in it.
        Err(e) if e.raw_os_error() == Some(ERROR_ACCESS_DENIED as i32) => {
            command.creation_flags(flags);
            command.spawn()
        }
        other => other,
    };
    drop(channel);
    child.map(Detached)
}

// ---------------------------------------------------------------------------
// Readiness probes: a TCP connection driven by the loop.

/// A non-blocking TCP connection under way, for the readiness probe. A socket
/// cannot join a wait by itself: `WSAEventSelect` ties it to a manual-reset event,
/// which every operation here resets first (`WSAEnumNetworkEvents`), so that it
/// means "something new happened" and the loop never spins on an old event.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    event: OwnedHandle,
    /// The outcome of the connect (a Winsock error code, 0 for success), once
    /// `FD_CONNECT` was reported.
    connected: Cell<Option<i32>>,
}

impl Connection {
    /// Starts connecting to `addr` without waiting.
    pub fn start(addr: &SocketAddr) -> io::Result<Connection> {
        winsock_started()?;
        let (family, storage, len) = socket_address(addr);
        // SAFETY: plain values; returns a new socket or INVALID_SOCKET.
        let socket = unsafe {
            WSASocketW(
                i32::from(family),
                SOCK_STREAM,
                IPPROTO_TCP,
                std::ptr::null(),
                0,
                WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT,
            )
        };
        if socket == INVALID_SOCKET {
            return Err(winsock_error());
        }
        // SAFETY: a new socket that nobody else owns.
        let stream = unsafe { TcpStream::from_raw_socket(socket as RawSocket) };
        let event = manual_event()?;
        let events = (FD_CONNECT | FD_READ | FD_WRITE | FD_CLOSE) as i32;
        // SAFETY: a valid socket and event; this also makes the socket non-blocking.
        if unsafe { WSAEventSelect(socket, raw(&event) as WSAEVENT, events) } != 0 {
            return Err(winsock_error());
        }
        // SAFETY: `storage` holds a valid address of `len` bytes for the call.
        let rc = unsafe { connect(socket, (&storage as *const SOCKADDR_STORAGE).cast(), len) };
        if rc != 0 {
            let error = winsock_error();
            if error.raw_os_error() != Some(WSAEWOULDBLOCK) {
                return Err(error);
            }
        }
        Ok(Connection {
            stream,
            event,
            connected: Cell::new(None),
        })
    }

    /// Signalled when something happened on the connection since the last look.
    pub fn waitable(&self, _interest: Interest) -> Waitable<'_> {
        self.event.as_handle()
    }

    /// Resets the event and takes note of the connect's outcome if it came.
    fn look(&self) {
        // SAFETY: plain data; all-zero is a valid value to overwrite.
        let mut happened: WSANETWORKEVENTS = unsafe { zeroed() };
        // SAFETY: a valid socket and event, and a structure that lives for the call.
        let rc = unsafe {
            WSAEnumNetworkEvents(
                self.stream.as_raw_socket() as SOCKET,
                raw(&self.event) as WSAEVENT,
                &mut happened,
            )
        };
        if rc == 0 && happened.lNetworkEvents & FD_CONNECT as i32 != 0 {
            self.connected
                .set(Some(happened.iErrorCode[FD_CONNECT_BIT as usize]));
        }
    }

    /// Whether the connect has finished: `None` while it is under way.
    pub fn finished(&self) -> Option<io::Result<()>> {
        self.look();
        match self.connected.get()? {
            0 => Some(Ok(())),
            code => Some(Err(io::Error::from_raw_os_error(code))),
        }
    }

    /// Reads what has arrived, never blocking (`WouldBlock` when nothing has).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.look();
        (&self.stream).read(buf)
    }

    /// Writes what fits now, never blocking.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.look();
        (&self.stream).write(buf)
    }
}

/// How many TCP connections are established with local port `port` (IPv4 and
/// IPv6), from the IP Helper's connection tables: for `--idle-timeout`.
pub fn established_connections(port: u16) -> io::Result<usize> {
    let v4 = tcp_table(|table: *mut MIB_TCPTABLE, size| {
        // SAFETY: `table` is NULL (a size query) or a buffer of `*size` bytes.
        unsafe { GetTcpTable(table, size, 0) }
    })?;
    let v6 = tcp_table(|table: *mut MIB_TCP6TABLE, size| {
        // SAFETY: as above.
        unsafe { GetTcp6Table(table, size, 0) }
    })?;
    let on_port = |local: u32| u16::from_be(local as u16) == port;
    // SAFETY: each table holds `dwNumEntries` rows inside its buffer (see tcp_table).
    let count = unsafe {
        rows(&v4, |t: &MIB_TCPTABLE| (t.dwNumEntries, t.table.as_ptr()))
            .iter()
            .filter(|r| r.Anonymous.State == MIB_TCP_STATE_ESTAB && on_port(r.dwLocalPort))
            .count()
            + rows(&v6, |t: &MIB_TCP6TABLE| (t.dwNumEntries, t.table.as_ptr()))
                .iter()
                .filter(|r| r.State == MIB_TCP_STATE_ESTAB && on_port(r.dwLocalPort))
                .count()
    };
    Ok(count)
}

/// One IP Helper table (`get` is `GetTcpTable` or `GetTcp6Table`), in a buffer of
/// usize words, so that it is aligned for the table; asked again while it grows.
fn tcp_table<T>(get: impl Fn(*mut T, *mut u32) -> u32) -> io::Result<Vec<usize>> {
    let mut size = 0u32;
    let mut buffer: Vec<usize> = Vec::new();
    loop {
        let table = if buffer.is_empty() {
            std::ptr::null_mut()
        } else {
            buffer.as_mut_ptr().cast()
        };
        match get(table, &mut size) {
            0 if !buffer.is_empty() => return Ok(buffer),
            0 | ERROR_INSUFFICIENT_BUFFER => {
                buffer = vec![0usize; (size as usize).div_ceil(size_of::<usize>()).max(1)];
            }
            error => return Err(io::Error::from_raw_os_error(error as i32)),
        }
    }
}

/// The rows of a table filled by [`tcp_table`].
///
/// # Safety
/// `buffer` must hold a table of type `T` whose first `count` rows (as `fields`
/// reads them) lie inside it.
unsafe fn rows<T, R>(buffer: &[usize], fields: impl Fn(&T) -> (u32, *const R)) -> &[R] {
    // SAFETY: the buffer holds a `T` and is aligned for it (the caller's promise).
    let (count, first) = fields(unsafe { &*(buffer.as_ptr() as *const T) });
    // SAFETY: the caller's promise: `count` rows from `first`, inside the buffer.
    unsafe { std::slice::from_raw_parts(first, count as usize) }
}

/// Starts Winsock for this process (once; std does so too, lazily, for its own
/// sockets, and the count of starts is never taken back).
fn winsock_started() -> io::Result<()> {
    static STARTED: OnceLock<i32> = OnceLock::new();
    let rc = *STARTED.get_or_init(|| {
        // SAFETY: plain data; the call fills it.
        let mut data: WSADATA = unsafe { zeroed() };
        // SAFETY: a valid version and a structure that lives for the call.
        unsafe { WSAStartup(0x202, &mut data) }
    });
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

fn winsock_error() -> io::Error {
    // SAFETY: reads this thread's last Winsock error.
    io::Error::from_raw_os_error(unsafe { WSAGetLastError() })
}

/// A socket address in the C layout `connect` takes.
fn socket_address(addr: &SocketAddr) -> (ADDRESS_FAMILY, SOCKADDR_STORAGE, i32) {
    // SAFETY: plain data; all zeroes is a valid value.
    let mut storage: SOCKADDR_STORAGE = unsafe { zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: plain data; all zeroes is a valid value.
            let mut sin: SOCKADDR_IN = unsafe { zeroed() };
            sin.sin_family = AF_INET;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.S_un.S_addr = u32::from_ne_bytes(a.ip().octets());
            // SAFETY: SOCKADDR_STORAGE is large enough and aligned for any address.
            unsafe { std::ptr::write((&mut storage as *mut SOCKADDR_STORAGE).cast(), sin) };
            (AF_INET, storage, size_of::<SOCKADDR_IN>() as i32)
        }
        SocketAddr::V6(a) => {
            // SAFETY: plain data; all zeroes is a valid value.
            let mut sin6: SOCKADDR_IN6 = unsafe { zeroed() };
            sin6.sin6_family = AF_INET6;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr.u.Byte = a.ip().octets();
            sin6.Anonymous.sin6_scope_id = a.scope_id();
            // SAFETY: as above.
            unsafe { std::ptr::write((&mut storage as *mut SOCKADDR_STORAGE).cast(), sin6) };
            (AF_INET6, storage, size_of::<SOCKADDR_IN6>() as i32)
        }
    }
}

/// Linux unmaps the start-up pages of its own code once the server is ready;
/// Windows keeps them (its working set is trimmed by the memory manager).
pub fn release_startup_pages() {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

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
    fn a_pipe_pair_is_connected_identified_and_answered() {
        let (mut server, mut client) = ControlStream::pair().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(server.0.peer_pid().unwrap(), Pid::current());
        assert_eq!(server.peer_user().unwrap(), current_user());
        assert_eq!(client.peer_user().unwrap(), current_user());
        client
            .write_all_until(b"{\"op\":\"status\"}\n", deadline)
            .unwrap();
        assert_eq!(
            server.0.read_line_until(1024, deadline).unwrap(),
            b"{\"op\":\"status\"}\n"
        );
        server
            .write_all_until(b"{\"ok\":true}\n", deadline)
            .unwrap();
        drop(server);
        assert_eq!(
            client.0.read_line_until(1024, deadline).unwrap(),
            b"{\"ok\":true}\n"
        );
        assert!(
            client.0.read_line_until(1024, deadline).unwrap().is_empty(),
            "the server closed: end of stream"
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ocwrap-sys-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_control_request_reaches_the_pipe_its_file_names() {
        let dir = scratch("control");
        let path = dir.join("x.sock");
        let mut listener = ControlListener::bind(&path).unwrap();
        assert!(pipe_named_at(&path).unwrap().starts_with(PIPE_PREFIX));
        let client_path = path.clone();
        let client = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut stream = ControlStream::connect(&client_path)?;
            stream.write_all_until(b"ping\n", deadline)?;
            stream.read_line_until(1024, deadline)
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut stream = loop {
            if let Some(accepted) = listener.accept() {
                break accepted.unwrap();
            }
            assert!(Instant::now() < deadline, "no client within 5 s");
            poll_readable(&[listener.waitable()], Some(Duration::from_millis(100))).unwrap();
        };
        assert_eq!(stream.0.read_line_until(1024, deadline).unwrap(), b"ping\n");
        stream.write_all_until(b"pong\n", deadline).unwrap();
        assert_eq!(client.join().unwrap().unwrap(), b"pong\n");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_held_lock_leaves_the_claim_readable() {
        let dir = scratch("lock");
        let path = dir.join("x.lock");
        let open = || {
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        let mut holder = open();
        assert!(try_lock_exclusive(&holder).unwrap());
        holder.write_all(b"42 7\n").unwrap();
        let other = open();
        assert!(!try_lock_exclusive(&other).unwrap(), "held");
        assert!(!try_lock_shared(&other).unwrap(), "held");
        let mut claim = String::new();
        (&other).read_to_string(&mut claim).unwrap();
        assert_eq!(claim, "42 7\n");
        drop(holder);
        assert!(try_lock_exclusive(&other).unwrap(), "free once closed");
        drop(other);
        let _ = fs::remove_dir_all(&dir);
    }

    /// The (user SID, access mask) of each entry of the access list of `handle`.
    fn access_list(handle: BorrowedHandle<'_>) -> Vec<(UserSid, u32)> {
        use windows_sys::Win32::Security::Authorization::{GetSecurityInfo, SE_KERNEL_OBJECT};
        use windows_sys::Win32::Security::{
            ACCESS_ALLOWED_ACE, ACL, ACL_SIZE_INFORMATION, AclSizeInformation,
            DACL_SECURITY_INFORMATION, GetAce, GetAclInformation,
        };
        let mut dacl: *mut ACL = std::ptr::null_mut();
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: a valid handle; on success `dacl` points into `sd`, which the call
        // allocated with LocalAlloc and which is freed below, after the reads.
        let rc = unsafe {
            GetSecurityInfo(
                raw(&handle),
                SE_KERNEL_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut dacl,
                std::ptr::null_mut(),
                &mut sd,
            )
        };
        assert_eq!(rc, 0, "GetSecurityInfo");
        assert!(!dacl.is_null(), "a null access list admits everyone");
        // SAFETY: plain data; the call fills it.
        let mut size: ACL_SIZE_INFORMATION = unsafe { zeroed() };
        // SAFETY: a valid ACL and a structure of the size passed.
        check(unsafe {
            GetAclInformation(
                dacl,
                (&mut size as *mut ACL_SIZE_INFORMATION).cast(),
                size_of::<ACL_SIZE_INFORMATION>() as u32,
                AclSizeInformation,
            )
        })
        .unwrap();
        let entries = (0..size.AceCount)
            .map(|i| {
                let mut ace: *mut std::ffi::c_void = std::ptr::null_mut();
                // SAFETY: a valid ACL and an index below its count.
                check(unsafe { GetAce(dacl, i, &mut ace) }).unwrap();
                let ace = ace as *const ACCESS_ALLOWED_ACE;
                // SAFETY: the entry lives in the ACL; an allowing entry (type 0, the
                // only kind our descriptor has) ends in its SID.
                unsafe {
                    assert_eq!((*ace).Header.AceType, 0, "an allowing entry");
                    let sid = std::ptr::addr_of!((*ace).SidStart) as PSID;
                    (UserSid(sid_bytes(sid)), (*ace).Mask)
                }
            })
            .collect();
        // SAFETY: allocated by GetSecurityInfo, freed once, not used after.
        unsafe { LocalFree(sd as HLOCAL) };
        entries
    }

    #[test]
    fn the_control_pipe_admits_only_this_user() {
        let dir = scratch("acl");
        let listener = ControlListener::bind(&dir.join("x.sock")).unwrap();
        let entries = access_list(listener.0.waiting.handle.as_handle());
        assert_eq!(entries.len(), 1, "one entry: {entries:?}");
        assert_eq!(entries[0].0, current_user());
        drop(listener);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn established_connections_are_counted_on_their_port() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(established_connections(port).unwrap(), 0);
        let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_server, _) = listener.accept().unwrap();
        // The accepted side has the listening port as its local port; the
        // client's local port is another.
        assert_eq!(established_connections(port).unwrap(), 1);
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
