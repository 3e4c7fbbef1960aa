//! The errors ocwrap reports about itself, each with the exit code it ends with.
//!
//! Messages are lowercase without a trailing period; an underlying OS error is kept
//! as the `source`, not pasted into the text, and `main` prints the chain on one line.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::exit;
use crate::process::Pid;

#[derive(Debug)]
pub enum Error {
    /// The command line is wrong; clap has the formatted message.
    Usage(Box<clap::Error>),
    /// COMMAND does not exist (exit 127).
    CommandNotFound {
        program: OsString,
        source: io::Error,
    },
    /// COMMAND exists but cannot be executed (exit 126).
    CommandNotExecutable {
        program: OsString,
        source: io::Error,
    },
    /// Starting COMMAND failed for another reason.
    Spawn {
        program: OsString,
        source: io::Error,
    },
    /// An owner given by PID is not running now.
    OwnerNotRunning(Pid),
    /// An owner can never exit, so the lease rule could never tear the server down.
    ImmortalOwner { pid: Pid, reason: &'static str },
    /// ocwrap's parent is outside its PID namespace (getppid() is 0).
    ParentUnknown,
    /// No ancestor of ocwrap has the name given to `--owner-ancestor`.
    AncestorNotFound(String),
    /// `--watch-method pidfd` on a kernel without pidfds.
    PidfdUnavailable(io::Error),
    /// The `--log` file cannot be opened.
    Log { path: PathBuf, source: io::Error },
    /// The state directory cannot be created or read.
    StateDir { path: PathBuf, source: io::Error },
    /// The state directory exists but is not safe to trust.
    UnsafeStateDir {
        path: PathBuf,
        problem: &'static str,
    },
    /// The control socket's path is longer than a socket address can hold.
    SocketPathTooLong { path: PathBuf, limit: usize },
    /// Junk (a directory, a FIFO…) is where ocwrap keeps one of a name's files;
    /// `what` says what and where ("a directory where the name's lock belongs").
    InTheWay { path: PathBuf, what: String },
    /// A live supervisor holds the name.
    AlreadyRunning { name: String, pid: Option<Pid> },
    /// No live supervisor holds the name.
    NotRunning(String),
    /// A live supervisor refused a control request or could not be reached.
    Control { name: String, message: String },
    /// A system call the supervisor depends on failed.
    Os {
        what: &'static str,
        source: io::Error,
    },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(e) => u8::try_from(e.exit_code()).unwrap_or(exit::USAGE),
            Error::CommandNotFound { .. } => exit::NOT_FOUND,
            Error::CommandNotExecutable { .. } => exit::NOT_EXECUTABLE,
            Error::NotRunning(_) | Error::Control { .. } => exit::FAILURE,
            _ => exit::INTERNAL,
        }
    }

    pub fn os(what: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Os { what, source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(e) => write!(f, "{}", e.kind()),
            Error::CommandNotFound { program, .. } => {
                write!(f, "command not found: {}", program.to_string_lossy())
            }
            Error::CommandNotExecutable { program, .. } => {
                write!(f, "command not executable: {}", program.to_string_lossy())
            }
            Error::Spawn { program, .. } => {
                write!(f, "cannot start {}", program.to_string_lossy())
            }
            Error::OwnerNotRunning(pid) => write!(f, "owner pid {pid} is not running"),
            Error::ImmortalOwner { pid, reason } => write!(
                f,
                "owner pid {pid} can never exit ({reason}); name the session process with --owner-pid, or use --owner none"
            ),
            Error::ParentUnknown => write!(
                f,
                "the parent process is outside this PID namespace; name an owner with --owner-pid or use --owner none"
            ),
            Error::AncestorNotFound(name) => {
                write!(
                    f,
                    "no ancestor process is named '{name}' (--owner-ancestor)"
                )
            }
            Error::PidfdUnavailable(_) => {
                write!(
                    f,
                    "pidfd watching is not available here (try --watch-method poll)"
                )
            }
            Error::Log { path, .. } => write!(f, "cannot open log file {}", path.display()),
            Error::StateDir { path, .. } => write!(f, "state dir {}", path.display()),
            Error::UnsafeStateDir { path, problem } => {
                write!(f, "refusing state dir {}: it {problem}", path.display())
            }
            Error::SocketPathTooLong { path, limit } => write!(
                f,
                "the control socket path {} is longer than {limit} bytes; use a shorter --state-dir",
                path.display()
            ),
            Error::AlreadyRunning {
                name,
                pid: Some(pid),
            } => {
                write!(
                    f,
                    "{name}: already running (pid {pid}); use 'ocwrap up' to share it"
                )
            }
            Error::AlreadyRunning { name, pid: None } => {
                write!(f, "{name}: already running; use 'ocwrap up' to share it")
            }
            Error::InTheWay { path, what } => {
                write!(f, "{}: {what}; run 'ocwrap gc' to clear it", path.display())
            }
            Error::NotRunning(name) => write!(f, "{name}: not running"),
            Error::Control { name, message } => write!(f, "{name}: {message}"),
            Error::Os { what, .. } => write!(f, "{what} failed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::CommandNotFound { source, .. }
            | Error::CommandNotExecutable { source, .. }
            | Error::Spawn { source, .. }
            | Error::Log { source, .. }
            | Error::Os { source, .. }
            | Error::StateDir { source, .. }
            | Error::PidfdUnavailable(source) => Some(source),
            Error::Usage(_)
            | Error::UnsafeStateDir { .. }
            | Error::SocketPathTooLong { .. }
            | Error::InTheWay { .. }
            | Error::AlreadyRunning { .. }
            | Error::NotRunning(_)
            | Error::Control { .. }
            | Error::OwnerNotRunning(_)
            | Error::ImmortalOwner { .. }
            | Error::ParentUnknown
            | Error::AncestorNotFound(_) => None,
        }
    }
}

/// The error and its causes on one line: `a: b: c`.
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        line.push_str(": ");
        line.push_str(&inner.to_string());
        cause = inner.source();
    }
    line
}
