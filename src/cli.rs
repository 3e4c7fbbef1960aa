//! The command line as parsed by clap: one definition for parsing, `--help` and
//! the `OCWRAP_*` environment forms. Nothing here is validated beyond single
//! values; `config` turns these raw flags into a checked [`crate::config::RunConfig`]
//! before anything has side effects.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::duration::parse_duration;
use crate::identity::Name;
use crate::process::Pid;
use crate::ready::SocketPath;

#[derive(Debug, Parser)]
#[command(
    name = "ocwrap",
    version,
    about = "Own a local server's whole process tree and tie its life to the sessions that need it",
    long_about = "Own a local server's whole process tree and tie its life to the sessions that need it.\n\n\
        `ocwrap -- COMMAND` is the same as `ocwrap run -- COMMAND`: start COMMAND in a \
        containment of its own (a cgroup where one can be made, else its own process group; \
        a job object on Windows), watch its owners, and tear the whole tree down when the \
        last owner is gone, on `ocwrap stop`, after --idle-timeout, on a terminating signal, \
        or when the server exits by itself.",
    after_long_help = EXIT_AND_KINDS,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Exit codes and error kinds, for `--help` and the man page (README has the table).
pub const EXIT_AND_KINDS: &str = "\
Exit codes: run: the server's own code, 128+n when it died of signal n, 0 when ocwrap \
tore it down by its own rule (owners gone, stop, idle). Other commands: 0 success, 1 \
failure. 2: usage error (hook: bad hook input). 125: ocwrap itself failed (state dir, \
owners, lock). 126/127: COMMAND not executable / not found.

Error kinds: every --json error carries \"kind\", a stable word to branch on (the \
message may change): usage, hook_input, command_not_found, command_not_executable, \
spawn_failed, no_owner_found, owner_not_running, owner_immortal, watch_unavailable, \
cwd_unusable, log_unusable, state_dir_unusable, state_dir_unsafe, socket_path_too_long, \
in_the_way, name_held, not_running, not_owner, control_failed, version_mismatch, \
not_ready, server_exited, owners_gone, stopped, supervisor_failed, internal.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Supervise COMMAND in the foreground (the default when no subcommand is given)
    Run(RunArgs),
    /// Start-or-attach in the background, wait until ready, and report
    Up(UpArgs),
    /// Show what ocwrap supervises now (stale and corrupt records are flagged)
    Status(StatusArgs),
    /// Tear down what ocwrap started
    Stop(StopArgs),
    /// Drop a lease (every lease without an owner option); returns without waiting
    Release(ReleaseArgs),
    /// Run as a Claude Code hook: SessionStart brings COMMAND up for this session, SessionEnd releases its lease
    #[command(
        long_about = "Run as a Claude Code hook, from a plugin's hooks/hooks.json: reads \
        the hook's JSON from stdin (at most 1 MiB, ended within 1 s). SessionStart: `up` with \
        these options and COMMAND, leased to this session's process (never the hook's shell; \
        with no session found, exit 125 and nothing started). SessionEnd: release this \
        session's lease unless `reason` is clear or resume, within 1.4 s; nothing to release \
        is success. Stdout stays empty (Claude Code adds a SessionStart hook's stdout to the \
        context) unless --json. Exit codes: 0 done; 1 up or release failed; 2 bad command \
        line or hook input (empty, not JSON, too big, not ended in time, another event); \
        125 no session, or ocwrap itself failed. Owner options replace the session rule."
    )]
    Hook(HookArgs),
    /// Remove stale records; kill only verified leftovers of dead supervisors
    Gc(GcArgs),
    /// Print a completion script for SHELL on stdout
    Completions(CompletionsArgs),
    /// Print the man page, ocwrap(1), in roff on stdout (try: ocwrap man | man -l -)
    Man,
    /// The supervisor `up` starts: its config comes over descriptor 3 (internal)
    #[command(name = "__supervise", hide = true)]
    Supervise,
    /// A supervisor's guard: tears its tree down when it dies (internal)
    #[command(name = "__guard", hide = true)]
    Guard {
        #[arg(num_args = 0.., allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

impl Command {
    /// Whether the command was asked for one JSON object on stdout.
    pub fn json(&self) -> bool {
        match self {
            Command::Up(a) => a.json,
            Command::Status(a) => a.json,
            Command::Stop(a) => a.json,
            Command::Release(a) => a.json,
            Command::Gc(a) => a.json,
            Command::Hook(a) => a.json,
            Command::Run(_)
            | Command::Completions(_)
            | Command::Man
            | Command::Supervise
            | Command::Guard { .. } => false,
        }
    }
}

/// Which supervisor a command is about: `--name N`, `--port P` (name `port-P`) or
/// `--socket PATH` (the name `up --socket PATH` gives).
#[derive(Debug, Clone, Args)]
pub struct Selector {
    /// The supervisor's name
    #[arg(long, value_name = "N", conflicts_with_all = ["port", "socket"], value_parser = Name::parse)]
    pub name: Option<Name>,

    /// The supervisor of this port (its name is `port-P`)
    #[arg(long, value_name = "P", conflicts_with = "socket", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// The supervisor of this local socket (named as `up --socket PATH` names it)
    #[arg(long, value_name = "PATH", value_parser = parse_socket)]
    pub socket: Option<SocketPath>,
}

impl Selector {
    pub fn stem(&self) -> Option<Name> {
        match (&self.name, self.port, &self.socket) {
            (Some(name), _, _) => Some(name.clone()),
            (None, Some(port), _) => Some(Name::of_port(port)),
            (None, None, Some(path)) => Some(Name::of_socket(path.as_str())),
            (None, None, None) => None,
        }
    }
}

fn parse_socket(text: &str) -> Result<SocketPath, String> {
    SocketPath::new(std::path::Path::new(text))
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub select: Selector,

    /// One JSON object on stdout
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["name", "port", "socket", "all"]))]
pub struct StopArgs {
    #[command(flatten)]
    pub select: Selector,

    /// Every live supervisor of this user
    #[arg(long)]
    pub all: bool,

    /// Return only once the whole tree is gone
    #[arg(long)]
    pub wait: bool,

    /// One JSON object on stdout
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["name", "port", "socket"]))]
#[command(mut_arg("owner_pids", |a| a.help("Drop this owner's lease").value_delimiter(None)))]
#[command(mut_arg("owner_ancestor", |a| a.help("Drop the lease of the nearest ancestor whose executable or argv[0] basename is NAME")))]
#[command(mut_arg("owner", |a| a.help("Drop the lease of `session` (the Claude Code session this caller runs under, else the caller's parent) or of `parent`, found as `up` finds them").long_help(None)))]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub select: Selector,

    /// Whose lease to drop, named as `up` named it (default: every lease)
    #[command(flatten)]
    pub owners: OwnerArgs,

    /// One JSON object on stdout
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Clone, Args)]
pub struct GcArgs {
    /// Say what would be done; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// One JSON object on stdout
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum OwnerMode {
    /// The Claude Code session this caller runs under, else the caller's parent
    Session,
    /// The process that started ocwrap
    Parent,
    /// No owner: run until stopped or signalled
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum StdinMode {
    /// The server reads ocwrap's own stdin
    Inherit,
    /// The server's stdin is /dev/null
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum WatchMethodArg {
    /// pidfd where the kernel has it, else poll
    Auto,
    /// Woken by the owner's exit, no wake-ups while idle (Linux: pidfd, ≥ 5.3; macOS: kqueue; Windows: process handle)
    Pidfd,
    /// Check every owner's start time every 200 ms (the portable method)
    Poll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum ContainArg {
    /// cgroup where a writable cgroup v2 is available (Windows: always the job), else group
    Auto,
    /// The server's own child cgroup (cgroup v2; Windows: a job object); an error when none can be made
    Cgroup,
    /// The server's process group plus everything below ocwrap (a child subreaper)
    Group,
}

/// Who owns the server: `run`, `up` and `hook` resolve these into leases,
/// `release` into the leases to drop.
#[derive(Debug, Clone, Default, Args)]
pub struct OwnerArgs {
    /// An owner to watch (repeatable); the server lives while any owner does
    #[arg(
        long = "owner-pid",
        value_name = "PID",
        env = "OCWRAP_OWNER_PID",
        value_delimiter = ','
    )]
    pub owner_pids: Vec<Pid>,

    /// Watch the nearest ancestor whose executable or argv[0] basename is NAME
    #[arg(long, value_name = "NAME", env = "OCWRAP_OWNER_ANCESTOR")]
    pub owner_ancestor: Option<String>,

    /// `session`: the Claude Code session this caller runs under (its session
    /// record, start time verified; else the nearest ancestor named `claude`), else
    /// the caller's parent; `parent`: the caller's parent (the default when no
    /// other owner is given); `none`: no owner, run until stopped
    #[arg(long, value_name = "WHO", env = "OCWRAP_OWNER")]
    pub owner: Option<OwnerMode>,
}

impl OwnerArgs {
    pub fn is_empty(&self) -> bool {
        self.owner_pids.is_empty() && self.owner_ancestor.is_none() && self.owner.is_none()
    }
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub owners: OwnerArgs,

    /// The server's working directory
    #[arg(long, value_name = "DIR", env = "OCWRAP_CWD")]
    pub cwd: Option<PathBuf>,

    /// How long the tree gets between SIGTERM and SIGKILL
    #[arg(long, value_name = "DUR", default_value = "5s", env = "OCWRAP_GRACE", value_parser = parse_duration)]
    pub grace: Duration,

    /// Keep running this long after the last owner is gone
    #[arg(long, value_name = "DUR", default_value = "0s", env = "OCWRAP_LINGER", value_parser = parse_duration)]
    pub linger: Duration,

    /// Tear the tree down once the port or socket has had no established
    /// connection this long (needs --port or --socket; checked every tenth of DUR,
    /// at most once a second)
    #[arg(long, value_name = "DUR", env = "OCWRAP_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,

    /// Append the server's stdout and stderr to FILE instead of sharing ocwrap's
    #[arg(long, value_name = "FILE", env = "OCWRAP_LOG")]
    pub log: Option<PathBuf>,

    /// Start the server in a new session (setsid) instead of a new process group
    #[arg(long, env = "OCWRAP_SESSION", action = ArgAction::SetTrue, value_parser = parse_bool)]
    pub session: bool,

    /// Start a guard process that tears the tree down when ocwrap is killed, even
    /// by SIGKILL (always on macOS; on Linux it also reaches descendants that left
    /// the group; Windows' job object needs none)
    #[arg(long, env = "OCWRAP_GUARD", action = ArgAction::SetTrue, value_parser = parse_bool)]
    pub guard: bool,

    /// The server's stdin
    #[arg(
        long,
        value_name = "MODE",
        default_value = "null",
        env = "OCWRAP_STDIN"
    )]
    pub stdin: StdinMode,

    /// How owners are watched
    #[arg(
        long,
        value_name = "METHOD",
        default_value = "auto",
        env = "OCWRAP_WATCH_METHOD"
    )]
    pub watch_method: WatchMethodArg,

    /// How the server's tree is held together so that teardown reaches all of it
    #[arg(
        long,
        value_name = "HOW",
        default_value = "auto",
        env = "OCWRAP_CONTAIN"
    )]
    pub contain: ContainArg,

    /// Lock/record name (`[A-Za-z0-9._-]{1,64}`); `port-P` with --port, `sock-…`
    /// with --socket
    #[arg(long, value_name = "N", env = "OCWRAP_NAME", value_parser = Name::parse)]
    pub name: Option<Name>,

    /// TCP port the server listens on: readiness and the default name
    #[arg(long, value_name = "P", env = "OCWRAP_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Where to probe the port; must be a loopback address
    #[arg(
        long,
        value_name = "H",
        default_value = "127.0.0.1",
        env = "OCWRAP_HOST"
    )]
    pub host: String,

    /// HTTP GET path for readiness (2xx = ready) instead of a TCP connect
    #[arg(long, value_name = "PATH", env = "OCWRAP_HEALTH", requires = "port")]
    pub health: Option<String>,

    /// Local socket the server listens on instead of a TCP port (Unix: a socket
    /// path; Windows: a named pipe, \\.\pipe\NAME): readiness and the default name
    #[arg(
        long,
        value_name = "PATH",
        env = "OCWRAP_SOCKET",
        conflicts_with = "port"
    )]
    pub socket: Option<PathBuf>,

    /// When the server is ready: `connect` (the port or socket accepts; the
    /// default with one), `exec` (once started; the default without), `notify`
    /// (it sends READY=1 to $NOTIFY_SOCKET), `fd:N` (it writes a newline to its
    /// descriptor N)
    #[arg(long, value_name = "HOW", env = "OCWRAP_READY", value_parser = parse_ready)]
    pub ready: Option<ReadyArg>,

    #[command(flatten)]
    pub state: StateArgs,

    /// Say each decision on stderr
    #[arg(short, long, env = "OCWRAP_VERBOSE", action = ArgAction::SetTrue, value_parser = parse_bool)]
    pub verbose: bool,

    /// The server command and its arguments (after `--`)
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// Records, locks, sockets and logs [default: $XDG_RUNTIME_DIR/ocwrap, else $TMPDIR/ocwrap-UID; Windows: %LOCALAPPDATA%\ocwrap]
    #[arg(long, value_name = "DIR", env = "OCWRAP_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Give up waiting for readiness after this long
    #[arg(long, value_name = "DUR", default_value = "30s", env = "OCWRAP_READY_TIMEOUT", value_parser = parse_duration)]
    pub ready_timeout: Duration,

    /// One JSON object on stdout
    #[arg(long, env = "OCWRAP_JSON", action = ArgAction::SetTrue, value_parser = parse_bool)]
    pub json: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, Args)]
pub struct HookArgs {
    /// Give up waiting for readiness after this long (SessionStart)
    #[arg(long, value_name = "DUR", default_value = "30s", env = "OCWRAP_READY_TIMEOUT", value_parser = parse_duration)]
    pub ready_timeout: Duration,

    /// One JSON object on stdout instead of nothing (for testing a hook by hand;
    /// Claude Code adds a SessionStart hook's stdout to the session's context)
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

/// The value of a flag's environment form (`OCWRAP_VERBOSE=1`). On the command line
/// such a flag takes no value, and clap hands this parser its implied `true`.
/// Shells, CI systems and `.env` files spell booleans in all of these ways, so all of
/// them are read, in any case; anything else is refused rather than guessed at.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "'{text}' is not a boolean: use 1/0, true/false, yes/no or on/off"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_read_in_every_usual_spelling() {
        for yes in ["1", "true", "yes", "on", "TRUE", "Yes", "ON"] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes}");
        }
        for no in ["0", "false", "no", "off", "FALSE", "No", "Off"] {
            assert_eq!(parse_bool(no), Ok(false), "{no}");
        }
        for bad in ["", "2", "y", "t", "maybe", " true", "enabled"] {
            assert!(parse_bool(bad).is_err(), "{bad:?} should be refused");
        }
    }
}

/// `--ready`: how readiness is judged, as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyArg {
    Connect,
    Exec,
    Notify,
    Fd(u32),
}

fn parse_ready(text: &str) -> Result<ReadyArg, String> {
    match text {
        "connect" => Ok(ReadyArg::Connect),
        "exec" => Ok(ReadyArg::Exec),
        "notify" => Ok(ReadyArg::Notify),
        _ => text
            .strip_prefix("fd:")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
            .map(ReadyArg::Fd)
            .ok_or_else(|| format!("'{text}': use connect, exec, notify or fd:N")),
    }
}
