//! Spawning: the server (suspended, joined to its job, then resumed), the server
//! as its supervisor knows it, the detached supervisor `up` starts, the log, and
//! what a failed spawn means. See `docs/DESIGN.md`, section "Platform seam".

use std::fs::{self, File};
use std::io;
use std::os::windows::io::{AsHandle, OwnedHandle};
use std::os::windows::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, PoisonError};

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_BAD_EXE_FORMAT, ERROR_EXE_MACHINE_TYPE_MISMATCH,
    ERROR_FILE_NOT_FOUND, ERROR_INVALID_NAME, ERROR_PATH_NOT_FOUND, HANDLE_FLAG_INHERIT,
    SetHandleInformation,
};
use windows_sys::Win32::System::Console::{
    GetStdHandle, STD_ERROR_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
};
use windows_sys::Win32::System::Threading::{
    CREATE_BREAKAWAY_FROM_JOB, CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW, CREATE_SUSPENDED,
    GetExitCodeProcess,
};

use super::contain::{Cgroup, Job};
use super::handoff::{HANDOFF_ENV, HandoffChannel};
use super::wait::Waitable;
use super::{check, is_signalled, raw};
use crate::process::Pid;

/// Where a supervisor starts a guard (`crate::guard`): never on Windows, whose
/// kill-on-close job ends the whole tree with ocwrap.
pub const GUARDING: crate::sys::Guarding = crate::sys::Guarding::NotNeeded;

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

/// Starts the server suspended and in a new process group (so that [`signal`]'s
/// Ctrl-Break reaches it, and a Ctrl-C meant for ocwrap's console does not),
/// joins it to `cgroup`'s job (or, without one, to a job of its own that lives as
/// long as ocwrap) and only then lets it run: nothing it starts can be outside the
/// job, and the job dies with ocwrap. `session` means nothing more here (Windows
/// has no sessions to start); `supervisor` is unused: the job, not a parent check,
/// ties the server to us.
///
/// [`signal`]: fn@super::signal
pub fn spawn_server(
    mut command: Command,
    _session: bool,
    _supervisor: Pid,
    cgroup: Option<&Cgroup>,
    _ready_fd: Option<&super::ReadyFd>,
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

/// No-op: Windows does not hand out the lowest free number for a new handle, so a
/// missing standard handle can never be taken by a file ocwrap opens later.
pub fn ensure_stdio_open() -> io::Result<()> {
    Ok(())
}

/// Opens (creating) the log for appending. Opening a file never blocks on Windows,
/// and a named pipe without a free instance fails at once (`ERROR_PIPE_BUSY`).
pub fn open_log(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new().create(true).append(true).open(path)
}

/// A supervisor `up` started.
#[derive(Debug)]
pub struct Detached(Child);

impl Detached {
    /// Its PID.
    pub fn pid(&self) -> Option<Pid> {
        Pid::from_u32(self.0.id())
    }

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

/// No-op: Windows has no subreaper (`false`). The job is what keeps every
/// descendant in ocwrap's tree, wherever its parent went.
pub fn become_child_subreaper() -> io::Result<bool> {
    Ok(false)
}
