//! Starting the server: its own process group (or session), stdio as configured, and
//! the guard that makes it die with the supervisor (docs/DESIGN.md, "Lifecycle", rules 1 and 2).
//!
//! process-wrap sets up the group or session; our own wrapper adds the parent-death
//! guard. The child handle process-wrap returns is dropped on purpose: the
//! supervisor reaps through its own loop (see [`crate::tree`]), which must see every
//! child it inherits as subreaper, not just this one.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};

use process_wrap::std::{CommandWrap, CommandWrapper, ProcessGroup, ProcessSession};

use crate::cli::StdinMode;
use crate::config::RunConfig;
use crate::contain::Containment;
use crate::error::Error;
use crate::process::Pid;
use crate::sys;

/// The process-wrap layer that ties the server's life to ours.
#[derive(Debug)]
struct DieWithSupervisor {
    supervisor: Pid,
}

impl CommandWrapper for DieWithSupervisor {
    fn pre_spawn(&mut self, command: &mut Command, _core: &CommandWrap) -> io::Result<()> {
        sys::die_with_supervisor(command, self.supervisor);
        Ok(())
    }
}

/// Starts the server and returns its PID, which is also its process group's ID.
/// `marker` (`KEY=value`) goes into its environment, inherited by its whole tree;
/// with cgroup `containment` the server is in its cgroup before it runs any code.
pub fn spawn_server(
    config: &RunConfig,
    marker: &str,
    containment: &Containment,
) -> Result<Pid, Error> {
    let log = match &config.log {
        Some(path) => Some(open_log(path).map_err(|source| Error::Log {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let mut command = CommandWrap::with_new(&config.program, |c| {
        c.args(&config.args);
        if let Some((key, value)) = marker.split_once('=') {
            c.env(key, value);
        }
        c.stdin(match config.stdin {
            StdinMode::Inherit => Stdio::inherit(),
            StdinMode::Null => Stdio::null(),
        });
        if let Some((out, err)) = log {
            c.stdout(out);
            c.stderr(err);
        }
    });
    if config.session {
        command.wrap(ProcessSession);
    } else {
        command.wrap(ProcessGroup::leader());
    }
    command.wrap(DieWithSupervisor {
        supervisor: Pid::current(),
    });
    if let Containment::Cgroup(cgroup) = containment {
        cgroup
            .enter_before_exec(command.command_mut())
            .map_err(Error::os("opening the cgroup's cgroup.procs"))?;
    }
    let child = command.spawn().map_err(|source| classify(config, source))?;
    Pid::from_u32(child.id())
        .ok_or_else(|| Error::os("spawn")(io::Error::other("child has no pid")))
}

/// Exit 127 for a missing command and 126 for one that cannot be executed, as shells do.
fn classify(config: &RunConfig, source: io::Error) -> Error {
    let program = config.program.clone();
    match source.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => Error::CommandNotFound { program, source },
        Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) | Some(libc::EPERM) => {
            Error::CommandNotExecutable { program, source }
        }
        _ => Error::Spawn { program, source },
    }
}

/// The log file twice: one handle for the server's stdout, one for its stderr.
/// Opened without blocking (a FIFO nobody reads is refused with `ENXIO` instead of
/// hanging ocwrap), then made blocking again for the server's writes.
pub fn open_log(path: &std::path::Path) -> io::Result<(File, File)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    sys::set_nonblocking(file.as_fd(), false)?;
    Ok((file.try_clone()?, file))
}
