//! Spawning, on Unix: the server in its own group or session (process-wrap) with the
//! per-OS guard that ties it to the supervisor, the detached `__supervise` with the
//! handoff channel as descriptor 3, the log, and ocwrap's own stdio. See
//! `docs/DESIGN.md`, section "Platform seam".

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, ExitStatus};

use process_wrap::std::{ChildWrapper, CommandWrap, CommandWrapper, ProcessGroup, ProcessSession};

use super::{HandoffChannel, Waitable, reap, set_nonblocking};
use crate::process::Pid;
use crate::sys::os::{self, Cgroup};

/// The server as its supervisor knows it: our child, by PID. Its leader stays an
/// unreaped child until teardown ends, so the PID cannot be recycled meanwhile.
#[derive(Debug)]
pub struct ServerChild {
    pid: Pid,
}

impl ServerChild {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Whether it has exited, without reaping it.
    pub fn has_exited(&self) -> io::Result<bool> {
        os::has_exited(self.pid)
    }

    /// Reaps it if it has exited, returning its status.
    pub fn reap(&self) -> io::Result<Option<ExitStatus>> {
        reap(self.pid)
    }

    /// Whether it has exited with status 0, without reaping it.
    pub fn exited_successfully(&self) -> bool {
        os::exited_successfully(self.pid)
    }

    /// Nothing: its exit wakes the loop through SIGCHLD.
    pub fn exit_waitable(&self) -> Option<Waitable<'_>> {
        None
    }
}

/// The process-wrap layer that ties the server's life to ours.
#[derive(Debug)]
struct DieWithSupervisor {
    supervisor: Pid,
}

impl CommandWrapper for DieWithSupervisor {
    fn pre_spawn(&mut self, command: &mut Command, _core: &CommandWrap) -> io::Result<()> {
        os::die_with_supervisor(command, self.supervisor);
        Ok(())
    }
}

/// The pipe of `--ready fd:N` as the server's descriptor N: the last step before
/// exec.
#[derive(Debug)]
struct PassReadyFd(super::ready::ChildEnd);

impl CommandWrapper for PassReadyFd {
    fn pre_spawn(&mut self, command: &mut Command, _core: &CommandWrap) -> io::Result<()> {
        self.0.pass_to(command);
        Ok(())
    }
}

/// Starts the server in its own process group (or, with `session`, its own
/// session), with the guard that makes it die with `supervisor` (process-wrap sets
/// up the group; our own wrapper adds the guard), and `ready_fd` as its
/// descriptor N (`--ready fd:N`), passed last so that no earlier step's
/// descriptor can be in its place. A cgroup was entered already by
/// [`Cgroup::enter_before_exec`], so `_cgroup` is not needed here. The child handle
/// process-wrap returns is dropped on purpose: the supervisor reaps every child it
/// inherits through its own loop, this one included.
pub fn spawn_server(
    command: Command,
    session: bool,
    supervisor: Pid,
    _cgroup: Option<&Cgroup>,
    ready_fd: Option<&super::ReadyFd>,
) -> io::Result<ServerChild> {
    let mut command = CommandWrap::from(command);
    if session {
        command.wrap(ProcessSession);
    } else {
        command.wrap(ProcessGroup::leader());
    }
    command.wrap(DieWithSupervisor { supervisor });
    // Wrappers run in the order they were added: this one last.
    if let Some(end) = ready_fd.and_then(super::ReadyFd::child_end) {
        command.wrap(PassReadyFd(end));
    }
    let child = command.spawn()?;
    let pid = Pid::from_u32(child.id()).ok_or_else(|| io::Error::other("child has no pid"))?;
    Ok(ServerChild { pid })
}

/// Whether a spawn failed because the command does not exist (exit 127).
pub fn command_not_found(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENOTDIR)
    )
}

/// Whether a spawn failed because the command cannot be executed (exit 126).
pub fn command_not_executable(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) | Some(libc::EPERM)
    )
}

/// Makes the supervisor's end of the handoff channel its descriptor 3.
#[derive(Debug)]
struct PassChannel(HandoffChannel);

impl CommandWrapper for PassChannel {
    fn pre_spawn(&mut self, command: &mut Command, _core: &CommandWrap) -> io::Result<()> {
        self.0.pass_to(command);
        Ok(())
    }
}

/// A supervisor `up` started.
pub struct Detached(Box<dyn ChildWrapper>);

impl std::fmt::Debug for Detached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Detached").field(&self.0.id()).finish()
    }
}

impl Detached {
    /// Its PID (our child's, so it names this process until we reap it).
    pub fn pid(&self) -> Option<Pid> {
        Pid::from_u32(self.0.id())
    }

    /// Waits for it to exit.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.0.wait()
    }

    /// Kills it (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.0.start_kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` (`ocwrap __supervise`) in its own session, so that killing the
/// caller's process group (an agent's command timeout does) cannot reach it, with
/// `channel` as its descriptor 3. Our copy of that end is closed once it runs, so
/// that its exit ends the channel.
pub fn spawn_detached(command: Command, channel: HandoffChannel) -> io::Result<Detached> {
    let mut command = CommandWrap::from(command);
    command.wrap(ProcessSession);
    command.wrap(PassChannel(channel));
    let child = command.spawn()?;
    drop(command);
    Ok(Detached(child))
}

/// Opens (creating, `0600`) the log for appending. Opened without blocking (a
/// FIFO nobody reads is refused with `ENXIO` instead of hanging ocwrap), then made
/// blocking again for the server's writes.
pub fn open_log(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    set_nonblocking(file.as_fd(), false)?;
    Ok(file)
}

/// Points each of fds 0, 1 and 2 that is closed at `/dev/null`. A supervisor started
/// with a closed stdio slot would otherwise hand that number to the next file it
/// opens, and its diagnostics (or the server's inherited stdio) would land there.
pub fn ensure_stdio_open() -> io::Result<()> {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only queries the descriptor table.
        let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1;
        if closed {
            let null = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            // The lowest free number is reused first, so a closed slot ≤ 2 gets it.
            let raw = null.as_raw_fd();
            if raw == fd {
                std::mem::forget(null);
            } else {
                // SAFETY: dup2 onto a closed descriptor number we do not own elsewhere.
                if unsafe { libc::dup2(raw, fd) } == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
    }
    Ok(())
}
