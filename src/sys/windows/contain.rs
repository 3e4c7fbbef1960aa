//! Containment: the job object that holds the server's whole tree (the seam's
//! `Cgroup`), killed with the job's last handle, and its completion port, which
//! turns a member's exit into an event. See `docs/DESIGN.md`, section "Platform
//! seam".

use std::io;
use std::mem::{size_of, zeroed};
use std::os::windows::io::{AsHandle, OwnedHandle};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

use windows_sys::Win32::Foundation::ERROR_MORE_DATA;
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
};
use windows_sys::Win32::System::IO::{
    CreateIoCompletionPort, GetQueuedCompletionStatus, OVERLAPPED, PostQueuedCompletionStatus,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_ASSOCIATE_COMPLETION_PORT, JOBOBJECT_BASIC_ACCOUNTING_INFORMATION,
    JOBOBJECT_BASIC_PROCESS_ID_LIST, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JobObjectAssociateCompletionPortInformation, JobObjectBasicAccountingInformation,
    JobObjectBasicProcessIdList, JobObjectExtendedLimitInformation, QueryInformationJobObject,
    SetInformationJobObject, TerminateJobObject,
};
use windows_sys::Win32::System::Threading::{
    INFINITE, OpenThread, ResetEvent, ResumeThread, SetEvent, THREAD_SUSPEND_RESUME,
    TerminateProcess,
};

use super::wait::Waitable;
use super::{KILLED_EXIT_CODE, check, manual_event, owned_or_invalid, owned_or_null, raw};
use crate::process::Pid;

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
    pub(super) job: Job,
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

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `TerminateJobObject` kills every member at once.
    pub fn can_kill(&self) -> bool {
        true
    }

    /// Nothing to do before the spawn: [`spawn_server`] joins the server to the
    /// job while it is suspended, so not one of its instructions runs outside.
    ///
    /// [`spawn_server`]: super::spawn_server
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

/// A job object that holds the server and everything it starts. Its only handle is
/// ours, and it is created with `KILL_ON_JOB_CLOSE`: when that handle closes — we
/// exit, crash, or are killed, however — the kernel terminates every process in the
/// job, grandchildren included. No descendant can leave it: breakaway is not
/// allowed, so `CREATE_BREAKAWAY_FROM_JOB` fails.
#[derive(Debug)]
pub(super) struct Job(OwnedHandle);

impl Job {
    pub(super) fn new() -> io::Result<Job> {
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
    ///
    /// [`spawn_server`]: super::spawn_server
    pub(super) fn adopt(&self, child: &Child) -> io::Result<()> {
        // SAFETY: a valid job handle and the child's valid process handle.
        let joined = check(unsafe { AssignProcessToJobObject(raw(&self.0), raw(child)) })
            .map_err(|e| step_failed("joining the job", e))
            .and_then(|()| resume_suspended(child.id()).map_err(|e| step_failed("resuming it", e)));
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

/// `error` with the step of the start it came from, so that a failure after
/// `CreateProcess` is told apart from one of `CreateProcess` itself (which keeps
/// its bare code: "not found" and "not executable" are read from it).
fn step_failed(step: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{step}: {error}"))
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
