//! Readiness: where a supervised server is reached and when it counts as ready
//! (record state `ready`); docs/DESIGN.md, "Readiness".
//!
//! [`Readiness`] is one validated value: an optional [`Endpoint`] (a TCP port on a
//! loopback host, or a local socket: a Unix-domain socket path, a named pipe on
//! Windows) and how readiness is judged ([`ReadyBy`]): once exec'd, once the
//! endpoint accepts a connection, once `GET PATH` answers 2xx (TCP), or once the
//! server says so itself (`READY=1` on `NOTIFY_SOCKET`, as systemd reads it; a
//! newline on a descriptor, as s6 reads it). The endpoint also names the
//! supervisor by default, tells `up` a server that is already there (`external`),
//! and is what `--idle-timeout` counts connections on.
//!
//! The supervisor watches readiness from its own loop through [`Watch`]: the TCP
//! probe ([`tcp`]), the socket probe ([`socket`]) and the declared forms
//! ([`declared`]) each say what to wait on and never block.

pub mod declared;
pub mod socket;
pub mod tcp;

use std::fmt;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::process::Pid;
use crate::sys::{self, Interest, Waitable};

pub use tcp::{Probe, ReadyProbe};

/// A local socket's path, checked once where it enters: absolute, UTF-8 (it goes
/// into the record and the name), no NUL, short enough for the platform's socket
/// address (`sys::MAX_SOCKET_PATH`), and on Windows a named pipe's name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SocketPath(String);

impl SocketPath {
    /// `raw` made absolute against ocwrap's working directory, or why it cannot be
    /// a socket path.
    pub fn new(raw: &Path) -> Result<SocketPath, String> {
        if raw.as_os_str().is_empty() {
            return Err("--socket takes a path, not ''".into());
        }
        let absolute =
            std::path::absolute(raw).map_err(|e| format!("--socket {}: {e}", raw.display()))?;
        let text = absolute
            .to_str()
            .ok_or_else(|| format!("--socket {}: the path is not UTF-8", raw.display()))?;
        SocketPath::try_from(text.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn path(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl TryFrom<String> for SocketPath {
    type Error = String;

    fn try_from(text: String) -> Result<SocketPath, String> {
        if text.contains('\0') {
            return Err(format!("--socket {text:?}: a path cannot hold NUL"));
        }
        if text.len() > sys::MAX_SOCKET_PATH {
            return Err(format!(
                "--socket {text}: {} bytes, longer than a socket address takes here ({} bytes); use a shorter path",
                text.len(),
                sys::MAX_SOCKET_PATH
            ));
        }
        if let Some(problem) = sys::socket_name_problem(&text) {
            return Err(format!("--socket {text}: {problem}"));
        }
        Ok(SocketPath(text))
    }
}

impl From<SocketPath> for String {
    fn from(path: SocketPath) -> String {
        path.0
    }
}

impl fmt::Display for SocketPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the server accepts connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// A TCP port on a loopback host, stored bare (`::1`, not `[::1]`).
    Tcp { host: String, port: u16 },
    /// A Unix-domain socket (a named pipe on Windows).
    Socket(SocketPath),
}

impl Endpoint {
    /// `http://HOST:PORT` for TCP, with an IPv6 host in brackets.
    pub fn url(&self) -> Option<String> {
        match self {
            Endpoint::Tcp { host, port } => Some(format!("http://{}:{port}", authority(host))),
            Endpoint::Socket(_) => None,
        }
    }

    pub fn port(&self) -> Option<u16> {
        match self {
            Endpoint::Tcp { port, .. } => Some(*port),
            Endpoint::Socket(_) => None,
        }
    }

    pub fn socket(&self) -> Option<&SocketPath> {
        match self {
            Endpoint::Socket(path) => Some(path),
            Endpoint::Tcp { .. } => None,
        }
    }

    /// One blocking look: does something accept a connection here now? For a
    /// socket, only a socket of this user counts; what else is at the path is
    /// [`socket::Look::InTheWay`].
    pub fn accepts(&self) -> bool {
        match self {
            Endpoint::Tcp { host, port } => Probe::connect(host, *port).check(),
            Endpoint::Socket(path) => socket::look(path) == socket::Look::Accepting,
        }
    }
}

/// The host as a URL or a `Host:` header writes it: an IPv6 one in brackets.
pub fn authority(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// How readiness is judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyBy {
    /// Once the server has been exec'd.
    Exec,
    /// Once the endpoint accepts a connection.
    Connect,
    /// Once `GET PATH` on the TCP endpoint answers 2xx.
    Health(String),
    /// Once the server (or a process of its tree) sends `READY=1` to the datagram
    /// socket named by `NOTIFY_SOCKET`.
    Notify,
    /// Once a newline arrives on the server's descriptor N.
    Fd(u32),
}

impl fmt::Display for ReadyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadyBy::Exec => f.write_str("exec"),
            ReadyBy::Connect => f.write_str("connect"),
            ReadyBy::Health(_) => f.write_str("health"),
            ReadyBy::Notify => f.write_str("notify"),
            ReadyBy::Fd(n) => write!(f, "fd:{n}"),
        }
    }
}

/// The lowest and highest descriptor `--ready fd:N` takes: 0 to 2 are stdio.
pub const READY_FDS: std::ops::RangeInclusive<u32> = 3..=1023;

/// Where the server is reached and when it is ready, valid by construction: a
/// connect needs an endpoint, a health path a TCP one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Parts", into = "Parts")]
pub struct Readiness {
    endpoint: Option<Endpoint>,
    by: ReadyBy,
}

/// The serialised form, checked on the way in.
#[derive(Serialize, Deserialize)]
struct Parts {
    endpoint: Option<Endpoint>,
    by: ReadyBy,
}

impl TryFrom<Parts> for Readiness {
    type Error = String;

    fn try_from(parts: Parts) -> Result<Readiness, String> {
        Readiness::new(parts.endpoint, parts.by)
    }
}

impl From<Readiness> for Parts {
    fn from(r: Readiness) -> Parts {
        Parts {
            endpoint: r.endpoint,
            by: r.by,
        }
    }
}

impl Readiness {
    /// The combination, or why it cannot be judged.
    pub fn new(endpoint: Option<Endpoint>, by: ReadyBy) -> Result<Readiness, String> {
        match (&endpoint, &by) {
            (None, ReadyBy::Connect) => {
                return Err("--ready connect needs --port or --socket".into());
            }
            (Some(Endpoint::Tcp { .. }), ReadyBy::Health(path))
                if !path.starts_with('/') || path.chars().any(char::is_whitespace) =>
            {
                return Err(format!(
                    "--health takes an absolute URL path like /health, not '{path}'"
                ));
            }
            (Some(Endpoint::Tcp { .. }), ReadyBy::Health(_)) => {}
            (_, ReadyBy::Health(_)) => return Err("--health needs --port".into()),
            (_, ReadyBy::Fd(n)) if !READY_FDS.contains(n) => {
                return Err(format!(
                    "--ready fd:{n}: the descriptor must be {} to {}",
                    READY_FDS.start(),
                    READY_FDS.end()
                ));
            }
            _ => {}
        }
        Ok(Readiness { endpoint, by })
    }

    /// Ready once exec'd, with no endpoint: a server ocwrap only runs.
    pub fn exec() -> Readiness {
        Readiness {
            endpoint: None,
            by: ReadyBy::Exec,
        }
    }

    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.as_ref()
    }

    pub fn by(&self) -> &ReadyBy {
        &self.by
    }

    pub fn url(&self) -> Option<String> {
        self.endpoint.as_ref().and_then(Endpoint::url)
    }

    pub fn port(&self) -> Option<u16> {
        self.endpoint.as_ref().and_then(Endpoint::port)
    }

    pub fn socket(&self) -> Option<&SocketPath> {
        self.endpoint.as_ref().and_then(Endpoint::socket)
    }

    /// `up`'s "is a server already answering here?": the health path where one
    /// is given, else a connect to the endpoint. Never with no endpoint.
    pub fn answering(&self) -> bool {
        match (&self.endpoint, &self.by) {
            (Some(Endpoint::Tcp { host, port }), ReadyBy::Health(path)) => {
                Probe::health(host, *port, path).check()
            }
            (Some(endpoint), _) => endpoint.accepts(),
            (None, _) => false,
        }
    }
}

/// What the supervisor watches until the server is ready.
#[derive(Debug)]
pub enum Watch {
    Tcp(ReadyProbe),
    Socket(socket::SocketProbe),
    Declared(declared::Declared),
}

impl Watch {
    /// The watch for `ready`, started at `now`; `None` when the server is ready
    /// once exec'd. `declared` is what [`declared::Declared::prepare`] made
    /// before the spawn, for the declared forms.
    pub fn start(
        ready: &Readiness,
        declared: Option<declared::Declared>,
        now: Instant,
    ) -> Option<Watch> {
        match (&ready.by, &ready.endpoint) {
            (ReadyBy::Notify | ReadyBy::Fd(_), _) => declared.map(Watch::Declared),
            (ReadyBy::Exec, _) | (_, None) => None,
            (ReadyBy::Health(path), Some(Endpoint::Tcp { host, port })) => Some(Watch::Tcp(
                ReadyProbe::new(Probe::health(host, *port, path), now),
            )),
            (_, Some(Endpoint::Tcp { host, port })) => Some(Watch::Tcp(ReadyProbe::new(
                Probe::connect(host, *port),
                now,
            ))),
            (_, Some(Endpoint::Socket(path))) => {
                Some(Watch::Socket(socket::SocketProbe::new(path.clone(), now)))
            }
        }
    }

    /// What to wait on now, if anything.
    pub fn waitable(&self) -> Option<(Waitable<'_>, Interest)> {
        match self {
            Watch::Tcp(probe) => probe.waitable(),
            Watch::Socket(_) => None,
            Watch::Declared(declared) => declared.waitable().map(|w| (w, Interest::Read)),
        }
    }

    /// When the loop must call [`Watch::advance`] at the latest.
    pub fn next_wake(&self) -> Option<Instant> {
        match self {
            Watch::Tcp(probe) => probe.next_wake(),
            Watch::Socket(probe) => Some(probe.next_wake()),
            Watch::Declared(_) => None,
        }
    }

    /// Moves the watch on without blocking; true once the server is ready.
    /// `in_tree` says whether a process that declared readiness belongs to the
    /// server's tree.
    pub fn advance(&mut self, now: Instant, in_tree: impl Fn(Pid) -> bool) -> bool {
        match self {
            Watch::Tcp(probe) => probe.advance(now),
            Watch::Socket(probe) => probe.advance(now),
            Watch::Declared(declared) => declared.advance(in_tree),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp() -> Option<Endpoint> {
        Some(Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: 4096,
        })
    }

    #[test]
    fn only_judgeable_combinations_exist() {
        assert!(Readiness::new(None, ReadyBy::Connect).is_err());
        assert!(Readiness::new(None, ReadyBy::Health("/h".into())).is_err());
        assert!(Readiness::new(tcp(), ReadyBy::Health("h".into())).is_err());
        assert!(Readiness::new(tcp(), ReadyBy::Health("/h".into())).is_ok());
        let socket = ["/tmp/b.sock", r"\\.\pipe\b.sock"]
            .into_iter()
            .find_map(|s| SocketPath::try_from(s.to_string()).ok())
            .map(Endpoint::Socket);
        assert!(socket.is_some(), "one of them is a socket path here");
        assert!(Readiness::new(socket.clone(), ReadyBy::Health("/h".into())).is_err());
        assert!(Readiness::new(socket, ReadyBy::Connect).is_ok());
        assert!(Readiness::new(None, ReadyBy::Fd(2)).is_err());
        assert!(Readiness::new(None, ReadyBy::Fd(1024)).is_err());
        assert!(Readiness::new(None, ReadyBy::Fd(3)).is_ok());
        assert!(Readiness::new(None, ReadyBy::Notify).is_ok());
    }

    #[test]
    fn a_handed_off_readiness_is_checked_again() {
        let bad = r#"{"endpoint":null,"by":"connect"}"#;
        assert!(serde_json::from_str::<Readiness>(bad).is_err());
        let good = Readiness::new(tcp(), ReadyBy::Health("/h".into())).unwrap();
        let text = serde_json::to_string(&good).unwrap();
        assert_eq!(serde_json::from_str::<Readiness>(&text).unwrap(), good);
    }

    #[test]
    fn socket_paths_must_fit_and_hold_no_nul() {
        let long = format!("/{}", "s".repeat(sys::MAX_SOCKET_PATH));
        let err = SocketPath::try_from(long).unwrap_err();
        assert!(err.contains("longer than a socket address"), "{err}");
        assert!(SocketPath::try_from("/a\0b".to_string()).is_err());
        assert!(SocketPath::new(Path::new("")).is_err());
    }

    #[test]
    fn a_relative_socket_path_is_made_absolute_where_paths_are_sockets() {
        if sys::socket_name_problem("/b.sock").is_some() {
            // Windows: a pipe name, never relative.
            assert!(SocketPath::new(Path::new("b.sock")).is_err());
            return;
        }
        let path = SocketPath::new(Path::new("b.sock")).unwrap();
        assert!(path.path().is_absolute(), "{path}");
        assert!(path.as_str().ends_with("/b.sock"), "{path}");
    }

    #[test]
    fn the_ways_read_as_the_record_writes_them() {
        assert_eq!(ReadyBy::Fd(3).to_string(), "fd:3");
        assert_eq!(ReadyBy::Health("/x".into()).to_string(), "health");
        assert_eq!(
            Endpoint::Tcp {
                host: "::1".into(),
                port: 80
            }
            .url()
            .as_deref(),
            Some("http://[::1]:80")
        );
    }
}
