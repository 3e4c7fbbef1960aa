//! Validation: raw command-line flags become a [`RunConfig`] whose every field is
//! known good, before anything has a side effect. Combinations clap cannot judge on
//! its own (for example `--owner none` beside an owner PID, possibly from the
//! environment) are usage errors here.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::CommandFactory;
use clap::error::ErrorKind;
use serde::{Deserialize, Serialize};

use crate::cli::{
    Cli, ContainArg, OwnerArgs, OwnerMode, ReadyArg, RunArgs, StdinMode, WatchMethodArg,
};
use crate::error::Error;
use crate::identity::Name;
use crate::process::Pid;
use crate::ready::{Endpoint, Readiness, ReadyBy, SocketPath};
use crate::sys;

/// Who owns the server: the leases ocwrap starts with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OwnerSpec {
    /// ocwrap's parent is an owner.
    pub parent: bool,
    /// These PIDs are owners.
    pub pids: Vec<Pid>,
    /// The nearest ancestor with this name is an owner.
    pub ancestor: Option<String>,
    /// The Claude Code session this caller runs under, else the caller's parent.
    #[serde(default)]
    pub session: bool,
}

impl OwnerSpec {
    pub fn is_none(&self) -> bool {
        !self.parent && !self.session && self.pids.is_empty() && self.ancestor.is_none()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub owners: OwnerSpec,
    /// `--cwd`: the server's working directory, absolute and known to be a
    /// directory when it was checked; else the caller's.
    #[serde(with = "os_path", default)]
    pub cwd: Option<PathBuf>,
    pub grace: Duration,
    pub linger: Duration,
    /// `--idle-timeout`: never zero (unset is off).
    pub idle_timeout: Option<Duration>,
    #[serde(with = "os_path")]
    pub log: Option<PathBuf>,
    pub session: bool,
    /// `--guard` (`crate::guard`).
    #[serde(default)]
    pub guard: bool,
    pub stdin: StdinMode,
    pub watch_method: WatchMethodArg,
    pub contain: ContainArg,
    pub verbose: bool,
    /// The record/lock name: `--name`, else `port-P` or `sock-…`, else none (a
    /// `pid-N` record).
    pub name: Option<Name>,
    /// `--port` (on `--host`) or `--socket`, and `--ready` or `--health`: where
    /// the server is reached and when it is ready.
    pub ready: Readiness,
    #[serde(with = "os_path")]
    pub state_dir: Option<PathBuf>,
    #[serde(with = "os_text")]
    pub program: OsString,
    #[serde(with = "os_texts")]
    pub args: Vec<OsString>,
}

impl RunConfig {
    pub fn from_args(raw: RunArgs) -> Result<RunConfig, Error> {
        let owners = owner_spec(&raw.owners)?;
        let cwd = raw.cwd.as_deref().map(working_dir).transpose()?;
        if raw.idle_timeout.is_some_and(|d| d.is_zero()) {
            return Err(usage(
                ErrorKind::InvalidValue,
                "--idle-timeout must be longer than 0 (leave it unset to turn it off)".into(),
            ));
        }
        let ready = readiness(&raw)?;
        if raw.idle_timeout.is_some() {
            idle_countable(&ready)?;
        }
        let name = raw.name.clone().or_else(|| match ready.endpoint() {
            Some(Endpoint::Tcp { port, .. }) => Some(Name::of_port(*port)),
            Some(Endpoint::Socket(path)) => Some(Name::of_socket(path.as_str())),
            None => None,
        });
        let mut command = raw.command.into_iter();
        let program = command
            .next()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| usage(ErrorKind::InvalidValue, "COMMAND must not be empty".into()))?;
        Ok(RunConfig {
            owners,
            cwd,
            grace: raw.grace,
            linger: raw.linger,
            idle_timeout: raw.idle_timeout,
            log: raw.log,
            session: raw.session,
            guard: raw.guard,
            stdin: raw.stdin,
            watch_method: raw.watch_method,
            contain: raw.contain,
            verbose: raw.verbose,
            name,
            ready,
            state_dir: raw
                .state
                .state_dir
                .as_deref()
                .map(crate::state::absolute)
                .transpose()?,
            program,
            args: command.collect(),
        })
    }
}

/// `--port`/`--host` or `--socket`, with `--ready` or `--health`, as one value.
fn readiness(raw: &RunArgs) -> Result<Readiness, Error> {
    let invalid = |message: String| usage(ErrorKind::InvalidValue, message);
    let host = loopback_host(&raw.host).ok_or_else(|| {
            usage(
                ErrorKind::InvalidValue,
                format!(
                    "--host must be a loopback address (127.0.0.0/8, ::1 or [::1], localhost), not '{}'",
                    raw.host
                ),
            )
        })?;
    let endpoint = match (raw.port, &raw.socket) {
        (Some(port), _) => Some(Endpoint::Tcp { host, port }),
        (None, Some(path)) => Some(Endpoint::Socket(SocketPath::new(path).map_err(invalid)?)),
        (None, None) => None,
    };
    let by = match (raw.ready, &raw.health) {
        (Some(ReadyArg::Connect) | None, Some(path)) => ReadyBy::Health(path.clone()),
        (Some(other), Some(_)) => {
            return Err(usage(
                ErrorKind::ArgumentConflict,
                format!(
                    "--health is a readiness of its own; it cannot be combined with --ready {}",
                    ready_word(other)
                ),
            ));
        }
        (None, None) if endpoint.is_some() => ReadyBy::Connect,
        (None, None) | (Some(ReadyArg::Exec), None) => ReadyBy::Exec,
        (Some(ReadyArg::Connect), None) => ReadyBy::Connect,
        (Some(ReadyArg::Notify), None) if !sys::NOTIFY_READINESS => {
            return Err(invalid(not_built("--ready notify")));
        }
        (Some(ReadyArg::Notify), None) => ReadyBy::Notify,
        (Some(ReadyArg::Fd(_)), None) if !sys::FD_READINESS => {
            return Err(invalid(not_built("--ready fd:N")));
        }
        (Some(ReadyArg::Fd(n)), None) => ReadyBy::Fd(n),
    };
    Readiness::new(endpoint, by).map_err(invalid)
}

fn ready_word(arg: ReadyArg) -> String {
    match arg {
        ReadyArg::Connect => "connect".into(),
        ReadyArg::Exec => "exec".into(),
        ReadyArg::Notify => "notify".into(),
        ReadyArg::Fd(n) => format!("fd:{n}"),
    }
}

fn not_built(what: &str) -> String {
    format!("{what} is not built on this platform (see README, \"Platforms\")")
}

/// `--idle-timeout` needs an endpoint whose connections this platform counts.
fn idle_countable(ready: &Readiness) -> Result<(), Error> {
    match ready.endpoint() {
        None => Err(usage(
            ErrorKind::MissingRequiredArgument,
            "--idle-timeout needs --port or --socket: it counts their connections".into(),
        )),
        Some(Endpoint::Socket(_)) if !sys::SOCKET_CONNECTIONS_COUNTED => Err(usage(
            ErrorKind::InvalidValue,
            not_built("--idle-timeout with --socket"),
        )),
        Some(_) => Ok(()),
    }
}

/// `--cwd DIR` made absolute (against ocwrap's own working directory) and checked
/// to be a directory ocwrap can enter, before anything starts.
fn working_dir(dir: &std::path::Path) -> Result<PathBuf, Error> {
    if dir.as_os_str().is_empty() {
        return Err(usage(
            ErrorKind::InvalidValue,
            "--cwd takes a directory, not ''".into(),
        ));
    }
    let unusable = |source| Error::Cwd {
        path: dir.to_path_buf(),
        source,
    };
    let path = std::path::absolute(dir).map_err(unusable)?;
    let meta = std::fs::metadata(&path).map_err(unusable)?;
    if !meta.is_dir() {
        return Err(unusable(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    std::fs::read_dir(&path).map_err(unusable)?;
    Ok(path)
}

/// The owners of the command line, checked; shared by `run`, `up`, `hook` and
/// (for the leases to drop) `release`.
pub fn owner_spec(raw: &OwnerArgs) -> Result<OwnerSpec, Error> {
    if let Some(name) = raw
        .owner_ancestor
        .as_ref()
        .filter(|n| n.is_empty() || n.contains('/'))
    {
        return Err(usage(
            ErrorKind::InvalidValue,
            format!("--owner-ancestor takes a process name, not '{name}'"),
        ));
    }
    let explicit = !raw.owner_pids.is_empty() || raw.owner_ancestor.is_some();
    match raw.owner {
        Some(OwnerMode::None) if explicit => Err(usage(
            ErrorKind::ArgumentConflict,
            "--owner none cannot be combined with --owner-pid or --owner-ancestor".into(),
        )),
        Some(OwnerMode::None) => Ok(OwnerSpec::default()),
        Some(OwnerMode::Session) => Ok(OwnerSpec {
            session: true,
            pids: raw.owner_pids.clone(),
            ancestor: raw.owner_ancestor.clone(),
            ..OwnerSpec::default()
        }),
        mode => Ok(OwnerSpec {
            parent: mode == Some(OwnerMode::Parent) || !explicit,
            pids: raw.owner_pids.clone(),
            ancestor: raw.owner_ancestor.clone(),
            session: false,
        }),
    }
}

/// The host to probe, without brackets, when `raw` names a loopback address:
/// `localhost`, an IPv4 literal in 127.0.0.0/8, or `::1` bare or in one pair of
/// brackets (as it is written in a URL). The brackets go because
/// [`crate::supervisor::url`] adds them for IPv6 itself; a host kept with them would
/// come out doubled, or malformed when the brackets do not pair.
fn loopback_host(raw: &str) -> Option<String> {
    if raw == "localhost" {
        return Some(raw.to_string());
    }
    let ip: IpAddr = match raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(inner) => IpAddr::V6(inner.parse().ok()?),
        None => raw.parse().ok()?,
    };
    ip.is_loopback().then(|| ip.to_string())
}

pub fn usage(kind: ErrorKind, message: String) -> Error {
    Error::Usage(Box::new(Cli::command().error(kind, message)))
}

/// OS strings in a handed-off config (`__supervise`) travel as JSON strings when
/// they are UTF-8, and in serde's platform form otherwise: an argument or a path
/// need not be UTF-8, but a megabyte of argv should not become four megabytes of
/// byte arrays.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum OsText {
    Utf8(String),
    Native(OsString),
}

impl From<&std::ffi::OsStr> for OsText {
    fn from(s: &std::ffi::OsStr) -> OsText {
        match s.to_str() {
            Some(text) => OsText::Utf8(text.to_string()),
            None => OsText::Native(s.to_owned()),
        }
    }
}

impl From<OsText> for OsString {
    fn from(t: OsText) -> OsString {
        match t {
            OsText::Utf8(text) => text.into(),
            OsText::Native(os) => os,
        }
    }
}

mod os_text {
    use std::ffi::OsString;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::OsText;

    pub fn serialize<S: Serializer>(s: &OsString, to: S) -> Result<S::Ok, S::Error> {
        OsText::from(s.as_os_str()).serialize(to)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<OsString, D::Error> {
        OsText::deserialize(from).map(OsString::from)
    }
}

mod os_texts {
    use std::ffi::OsString;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::OsText;

    pub fn serialize<S: Serializer>(all: &[OsString], to: S) -> Result<S::Ok, S::Error> {
        let texts: Vec<OsText> = all.iter().map(|s| OsText::from(s.as_os_str())).collect();
        texts.serialize(to)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Vec<OsString>, D::Error> {
        Vec::<OsText>::deserialize(from).map(|all| all.into_iter().map(OsString::from).collect())
    }
}

mod os_path {
    use std::ffi::OsString;
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::OsText;

    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, to: S) -> Result<S::Ok, S::Error> {
        path.as_ref()
            .map(|p| OsText::from(p.as_os_str()))
            .serialize(to)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Option<PathBuf>, D::Error> {
        Option::<OsText>::deserialize(from).map(|p| p.map(|t| PathBuf::from(OsString::from(t))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<RunConfig, Error> {
        let cli = Cli::try_parse_from(args).map_err(|e| Error::Usage(Box::new(e)))?;
        RunConfig::from_args(cli.run)
    }

    #[test]
    fn parent_is_the_owner_only_when_no_other_is_given() {
        let c = parse(&["ocwrap", "--", "true"]).unwrap();
        assert_eq!(
            c.owners,
            OwnerSpec {
                parent: true,
                ..OwnerSpec::default()
            }
        );
        let c = parse(&["ocwrap", "--owner-pid", "42", "--", "true"]).unwrap();
        assert!(!c.owners.parent);
        assert_eq!(c.owners.pids, [Pid::new(42).unwrap()]);
        let c = parse(&[
            "ocwrap",
            "--owner",
            "parent",
            "--owner-pid",
            "42",
            "--",
            "true",
        ])
        .unwrap();
        assert!(c.owners.parent);
        let c = parse(&["ocwrap", "--owner", "none", "--", "true"]).unwrap();
        assert!(c.owners.is_none());
    }

    #[test]
    fn conflicting_or_empty_values_are_usage_errors() {
        for args in [
            &[
                "ocwrap",
                "--owner",
                "none",
                "--owner-pid",
                "42",
                "--",
                "true",
            ][..],
            &["ocwrap", "--owner-ancestor", "a/b", "--", "true"],
            &["ocwrap", "--", ""],
            &["ocwrap", "--name", "../x", "--", "true"],
            &["ocwrap", "--host", "10.0.0.1", "--", "true"],
            &["ocwrap", "--port", "0", "--", "true"],
            &["ocwrap", "--grace", "soon", "--", "true"],
            &["ocwrap", "--idle-timeout", "5s", "--", "true"],
            &[
                "ocwrap",
                "--port",
                "4096",
                "--idle-timeout",
                "0",
                "--",
                "true",
            ],
            &["ocwrap", "--owner-pid", "0", "--", "true"],
            &["ocwrap", "true"],
            &["ocwrap"],
        ] {
            let err = parse(args).expect_err(&format!("{args:?} should fail"));
            assert_eq!(err.exit_code(), crate::exit::USAGE, "{args:?}");
        }
    }

    #[test]
    fn the_port_names_the_lock_unless_a_name_is_given() {
        assert_eq!(
            parse(&["ocwrap", "--port", "4096", "--", "x"])
                .unwrap()
                .name
                .as_deref(),
            Some("port-4096")
        );
        let c = parse(&["ocwrap", "--port", "4096", "--name", "oc", "--", "x"]).unwrap();
        assert_eq!(c.name.as_deref(), Some("oc"));
        assert_eq!(parse(&["ocwrap", "--", "x"]).unwrap().name, None);
        assert!(parse(&["ocwrap", "--host", "::1", "--", "x"]).is_ok());
        assert!(parse(&["ocwrap", "--host", "localhost", "--", "x"]).is_ok());
    }

    /// A socket path this platform takes: a Unix path, or a named pipe.
    fn a_socket() -> &'static str {
        ["/tmp/b.sock", r"\\.\pipe\b.sock"]
            .into_iter()
            .find(|s| sys::socket_name_problem(s).is_none())
            .unwrap()
    }

    #[test]
    fn socket_and_ready_options_make_one_readiness_or_a_usage_error() {
        let socket = a_socket();
        for bad in [
            &["ocwrap", "--port", "80", "--socket", socket, "--", "x"][..],
            &["ocwrap", "--ready", "connect", "--", "x"],
            &["ocwrap", "--ready", "fd:2", "--", "x"],
            &["ocwrap", "--ready", "fd:", "--", "x"],
            &["ocwrap", "--ready", "fd:-3", "--", "x"],
            &["ocwrap", "--ready", "maybe", "--", "x"],
            &["ocwrap", "--socket", "", "--", "x"],
            &["ocwrap", "--socket", socket, "--health", "/h", "--", "x"],
            &[
                "ocwrap", "--port", "80", "--health", "/h", "--ready", "notify", "--", "x",
            ],
            &[
                "ocwrap",
                "--ready",
                "notify",
                "--idle-timeout",
                "5s",
                "--",
                "x",
            ],
        ] {
            let err = parse(bad).expect_err(&format!("{bad:?} should fail"));
            assert_eq!(err.exit_code(), crate::exit::USAGE, "{bad:?}");
        }
        let c = parse(&["ocwrap", "--socket", socket, "--", "x"]).unwrap();
        assert_eq!(c.ready.by(), &ReadyBy::Connect);
        assert_eq!(c.ready.socket().map(SocketPath::as_str), Some(socket));
        assert!(c.name.as_deref().unwrap().starts_with("sock-b.sock-"));
        let fd = parse(&["ocwrap", "--ready", "fd:3", "--name", "n", "--", "x"]);
        if sys::FD_READINESS {
            let c = fd.unwrap();
            assert_eq!(c.ready.by(), &ReadyBy::Fd(3));
            assert_eq!(c.ready.endpoint(), None);
        } else {
            assert_eq!(fd.unwrap_err().exit_code(), crate::exit::USAGE);
        }
        let c = parse(&["ocwrap", "--port", "80", "--ready", "exec", "--", "x"]).unwrap();
        assert_eq!(c.ready.by(), &ReadyBy::Exec);
        assert_eq!(c.ready.port(), Some(80));
        assert_eq!(
            parse(&["ocwrap", "--", "x"]).unwrap().ready,
            Readiness::exec()
        );
        let c = parse(&["ocwrap", "--port", "80", "--health", "/h", "--", "x"]).unwrap();
        assert_eq!(c.ready.by(), &ReadyBy::Health("/h".into()));
        let idle = [
            "ocwrap",
            "--socket",
            socket,
            "--idle-timeout",
            "5s",
            "--",
            "x",
        ];
        assert_eq!(parse(&idle).is_ok(), sys::SOCKET_CONNECTIONS_COUNTED);
        let notify = parse(&["ocwrap", "--port", "80", "--ready", "notify", "--", "x"]);
        if sys::NOTIFY_READINESS {
            let c = notify.unwrap();
            assert_eq!((c.ready.by(), c.ready.port()), (&ReadyBy::Notify, Some(80)));
        } else {
            assert_eq!(notify.unwrap_err().exit_code(), crate::exit::USAGE);
        }
    }

    #[test]
    fn loopback_hosts_are_stored_without_brackets() {
        for (given, stored, url) in [
            ("localhost", "localhost", "http://localhost:4096"),
            ("127.0.0.1", "127.0.0.1", "http://127.0.0.1:4096"),
            ("127.1.2.3", "127.1.2.3", "http://127.1.2.3:4096"),
            ("::1", "::1", "http://[::1]:4096"),
            ("[::1]", "::1", "http://[::1]:4096"),
            ("0:0:0:0:0:0:0:1", "::1", "http://[::1]:4096"),
        ] {
            let c = parse(&["ocwrap", "--host", given, "--port", "4096", "--", "x"]).unwrap();
            let Some(Endpoint::Tcp { host, .. }) = c.ready.endpoint() else {
                panic!("--port gives a TCP endpoint")
            };
            assert_eq!(host, stored, "{given}");
            assert_eq!(c.ready.url().as_deref(), Some(url), "{given}");
        }
    }

    #[test]
    fn other_hosts_are_usage_errors_naming_the_value() {
        for bad in [
            "[[::1]]",
            "[::1",
            "::1]",
            "[]",
            "[127.0.0.1]",
            "[localhost]",
            "10.0.0.1",
            "::",
            "::ffff:127.0.0.1",
            "127.1",
            "LOCALHOST ",
            "",
        ] {
            let err = parse(&["ocwrap", "--host", bad, "--", "x"]).expect_err(bad);
            assert_eq!(err.exit_code(), crate::exit::USAGE, "{bad}");
            let Error::Usage(clap) = err else {
                panic!("{bad}: not a usage error")
            };
            assert!(clap.to_string().contains(&format!("'{bad}'")), "{clap}");
        }
    }

    #[test]
    fn run_subcommand_takes_the_same_options() {
        let cli =
            Cli::try_parse_from(["ocwrap", "run", "--grace", "1s", "--", "sh", "-c", "x"]).unwrap();
        let Some(crate::cli::Command::Run(args)) = cli.command else {
            panic!("expected the run subcommand");
        };
        let c = RunConfig::from_args(args).unwrap();
        assert_eq!(c.grace, Duration::from_secs(1));
        assert_eq!(c.program, "sh");
        assert_eq!(c.args, ["-c", "x"]);
    }
}
