//! The errors ocwrap reports about itself, each with the exit code it ends with.
//!
//! Messages are lowercase without a trailing period; an underlying OS error is kept
//! as the `source`, not pasted into the text, and `main` prints the chain on one line.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::exit;
use crate::identity::Name;
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
    /// `ocwrap hook` runs under no Claude Code session it can find.
    NoSession,
    /// The hook's input (stdin) is not what Claude Code sends.
    HookInput(String),
    /// The server's working directory (`--cwd`) cannot be used.
    Cwd { path: PathBuf, source: io::Error },
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
    /// A socket path in the state dir (the control socket, the notify socket) is
    /// longer than a socket address can hold.
    SocketPathTooLong { path: PathBuf, limit: usize },
    /// Junk (a directory, a FIFO…) is where ocwrap keeps one of a name's files;
    /// `what` says what and where ("a directory where the name's lock belongs").
    InTheWay { path: PathBuf, what: String },
    /// A live supervisor holds the name.
    AlreadyRunning { name: Name, pid: Option<Pid> },
    /// No live supervisor holds the name.
    NotRunning(Name),
    /// A live supervisor refused a control request or could not be reached.
    Control { name: Name, message: String },
    /// `release` of an owner that holds no lease.
    NotOwner { name: Name, message: String },
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
            Error::HookInput(_) => exit::USAGE,
            Error::CommandNotFound { .. } => exit::NOT_FOUND,
            Error::CommandNotExecutable { .. } => exit::NOT_EXECUTABLE,
            Error::NotRunning(_) | Error::Control { .. } | Error::NotOwner { .. } => exit::FAILURE,
            _ => exit::INTERNAL,
        }
    }

    /// The stable word a program branches on (`kind` in `--json` errors;
    /// docs/DESIGN.md, "Error kinds"), never the message text.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage(_) => kind::USAGE,
            Error::HookInput(_) => kind::HOOK_INPUT,
            Error::CommandNotFound { .. } => kind::COMMAND_NOT_FOUND,
            Error::CommandNotExecutable { .. } => kind::COMMAND_NOT_EXECUTABLE,
            Error::Spawn { .. } => kind::SPAWN_FAILED,
            Error::OwnerNotRunning(_) => kind::OWNER_NOT_RUNNING,
            Error::ImmortalOwner { .. } => kind::OWNER_IMMORTAL,
            Error::ParentUnknown | Error::AncestorNotFound(_) | Error::NoSession => {
                kind::NO_OWNER_FOUND
            }
            Error::PidfdUnavailable(_) => kind::WATCH_UNAVAILABLE,
            Error::Cwd { .. } => kind::CWD_UNUSABLE,
            Error::Log { .. } => kind::LOG_UNUSABLE,
            Error::StateDir { .. } => kind::STATE_DIR_UNUSABLE,
            Error::UnsafeStateDir { .. } => kind::STATE_DIR_UNSAFE,
            Error::SocketPathTooLong { .. } => kind::SOCKET_PATH_TOO_LONG,
            Error::InTheWay { .. } => kind::IN_THE_WAY,
            Error::AlreadyRunning { .. } => kind::NAME_HELD,
            Error::NotRunning(_) => kind::NOT_RUNNING,
            Error::Control { .. } => kind::CONTROL_FAILED,
            Error::NotOwner { .. } => kind::NOT_OWNER,
            Error::Os { .. } => kind::INTERNAL,
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
            Error::NoSession => write!(
                f,
                "no Claude Code session found above this process (neither its session record nor an ancestor named 'claude')"
            ),
            Error::HookInput(problem) => write!(f, "hook input: {problem}"),
            Error::Cwd { path, .. } => {
                write!(f, "cannot use {} as the working directory", path.display())
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
                "the socket path {} is longer than {limit} bytes; use a shorter --state-dir",
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
            Error::Control { name, message } | Error::NotOwner { name, message } => {
                write!(f, "{name}: {message}")
            }
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
            | Error::Cwd { source, .. }
            | Error::PidfdUnavailable(source) => Some(source),
            Error::Usage(_)
            | Error::UnsafeStateDir { .. }
            | Error::SocketPathTooLong { .. }
            | Error::InTheWay { .. }
            | Error::AlreadyRunning { .. }
            | Error::NotRunning(_)
            | Error::Control { .. }
            | Error::NotOwner { .. }
            | Error::OwnerNotRunning(_)
            | Error::ImmortalOwner { .. }
            | Error::ParentUnknown
            | Error::AncestorNotFound(_)
            | Error::NoSession
            | Error::HookInput(_) => None,
        }
    }
}

/// The error kinds: stable words, documented in README ("Error kinds") and in
/// the JS package's `OcwrapErrorKind`. New kinds may be added; none is renamed.
pub mod kind {
    /// The command line or an `OCWRAP_*` variable is wrong (exit 2).
    pub const USAGE: &str = "usage";
    /// `ocwrap hook`: stdin is empty, malformed, too big, or an unknown event (exit 2).
    pub const HOOK_INPUT: &str = "hook_input";
    pub const COMMAND_NOT_FOUND: &str = "command_not_found";
    pub const COMMAND_NOT_EXECUTABLE: &str = "command_not_executable";
    pub const SPAWN_FAILED: &str = "spawn_failed";
    /// No owner could be found: no ancestor of that name, no session, a parent
    /// outside the PID namespace.
    pub const NO_OWNER_FOUND: &str = "no_owner_found";
    pub const OWNER_NOT_RUNNING: &str = "owner_not_running";
    pub const OWNER_IMMORTAL: &str = "owner_immortal";
    pub const WATCH_UNAVAILABLE: &str = "watch_unavailable";
    pub const CWD_UNUSABLE: &str = "cwd_unusable";
    pub const LOG_UNUSABLE: &str = "log_unusable";
    pub const STATE_DIR_UNUSABLE: &str = "state_dir_unusable";
    pub const STATE_DIR_UNSAFE: &str = "state_dir_unsafe";
    pub const SOCKET_PATH_TOO_LONG: &str = "socket_path_too_long";
    /// Junk where one of a name's files belongs (`ocwrap gc` clears it).
    pub const IN_THE_WAY: &str = "in_the_way";
    /// A live supervisor holds the name (`run`; `up` attaches instead).
    pub const NAME_HELD: &str = "name_held";
    pub const NOT_RUNNING: &str = "not_running";
    pub const CONTROL_FAILED: &str = "control_failed";
    /// `release`: that owner holds no lease.
    pub const NOT_OWNER: &str = "not_owner";
    /// The supervisor runs another version of ocwrap.
    pub const VERSION_MISMATCH: &str = "version_mismatch";
    /// `up`: not ready before `--ready-timeout`.
    pub const NOT_READY: &str = "not_ready";
    /// `up`: the server exited (or could not start) before it was ready.
    pub const SERVER_EXITED: &str = "server_exited";
    /// `up`: every owner was gone before the server was ready.
    pub const OWNERS_GONE: &str = "owners_gone";
    /// `up`: stopped (`ocwrap stop`, idle, a signal) before the server was ready.
    pub const STOPPED: &str = "stopped";
    /// `up`: the supervisor ended without an answer.
    pub const SUPERVISOR_FAILED: &str = "supervisor_failed";
    /// A system call ocwrap depends on failed.
    pub const INTERNAL: &str = "internal";

    /// Every kind, for the documentation test.
    pub const ALL: &[&str] = &[
        USAGE,
        HOOK_INPUT,
        COMMAND_NOT_FOUND,
        COMMAND_NOT_EXECUTABLE,
        SPAWN_FAILED,
        NO_OWNER_FOUND,
        OWNER_NOT_RUNNING,
        OWNER_IMMORTAL,
        WATCH_UNAVAILABLE,
        CWD_UNUSABLE,
        LOG_UNUSABLE,
        STATE_DIR_UNUSABLE,
        STATE_DIR_UNSAFE,
        SOCKET_PATH_TOO_LONG,
        IN_THE_WAY,
        NAME_HELD,
        NOT_RUNNING,
        CONTROL_FAILED,
        NOT_OWNER,
        VERSION_MISMATCH,
        NOT_READY,
        SERVER_EXITED,
        OWNERS_GONE,
        STOPPED,
        SUPERVISOR_FAILED,
        INTERNAL,
    ];
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
