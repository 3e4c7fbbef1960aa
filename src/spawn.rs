//! Starting the server: its own process group (or session), stdio as configured, and
//! the guard that makes it die with the supervisor (docs/DESIGN.md, "Lifecycle", rules 1 and 2).
//!
//! The command is built here; `sys::spawn_server` starts it the platform's way: on
//! Unix with process-wrap for the group or session and a parent-death guard; on
//! Windows suspended, in a new process group, joined to a kill-on-close job before
//! it runs. The supervisor reaps through its own loop (see [`crate::tree`]), which
//! must see every child it inherits as subreaper, not just this one.

use std::fs::File;
use std::io;
use std::process::{Command, Stdio};

use crate::cli::StdinMode;
use crate::config::RunConfig;
use crate::contain::Containment;
use crate::error::Error;
use crate::identity::TreeMarker;
use crate::process::Pid;
use crate::ready::declared::{self, Declared};
use crate::sys::{self, ServerChild};

/// Starts the server; its PID is also its process group's ID. `marker` goes into
/// its environment, inherited by its whole tree; with cgroup
/// `containment` the server is in its cgroup before it runs any code. `declared`
/// is readiness the server declares: `NOTIFY_SOCKET`, or descriptor N.
pub fn spawn_server(
    config: &RunConfig,
    marker: TreeMarker,
    containment: &Containment,
    declared: Option<&Declared>,
) -> Result<ServerChild, Error> {
    let log = match &config.log {
        Some(path) => Some(open_log(path).map_err(|source| Error::Log {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let mut command = Command::new(&config.program);
    command.args(&config.args);
    if let Some(dir) = &config.cwd {
        command.current_dir(dir);
    }
    command.env(TreeMarker::KEY, marker.value());
    if let Some(path) = declared.and_then(Declared::notify_socket) {
        command.env(declared::NOTIFY_SOCKET, path);
    }
    command.stdin(match config.stdin {
        StdinMode::Inherit => Stdio::inherit(),
        StdinMode::Null => Stdio::null(),
    });
    if let Some((out, err)) = log {
        command.stdout(out);
        command.stderr(err);
    }
    let cgroup = match containment {
        Containment::Cgroup(cgroup) => {
            cgroup
                .enter_before_exec(&mut command)
                .map_err(Error::os("opening the cgroup's cgroup.procs"))?;
            Some(cgroup)
        }
        Containment::Group => None,
    };
    let ready_fd = declared.and_then(Declared::ready_fd);
    sys::spawn_server(command, config.session, Pid::current(), cgroup, ready_fd)
        .map_err(|source| classify(config, source))
}

/// Exit 127 for a missing command and 126 for one that cannot be executed, as shells do.
fn classify(config: &RunConfig, source: io::Error) -> Error {
    let program = config.program.clone();
    // A `--cwd` removed since it was checked fails the spawn as a missing file
    // would: it is not the command that is missing.
    if let Some(dir) = config.cwd.as_ref().filter(|dir| !dir.is_dir()) {
        return Error::Cwd {
            path: dir.clone(),
            source,
        };
    }
    if sys::command_not_found(&source) {
        Error::CommandNotFound { program, source }
    } else if sys::command_not_executable(&source) {
        Error::CommandNotExecutable { program, source }
    } else {
        Error::Spawn { program, source }
    }
}

/// The log file twice: one handle for the server's stdout, one for its stderr
/// (see `sys::open_log` for how it is opened).
pub fn open_log(path: &std::path::Path) -> io::Result<(File, File)> {
    let file = sys::open_log(path)?;
    Ok((file.try_clone()?, file))
}
