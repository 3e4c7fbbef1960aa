//! The control socket `<stem>.sock`: how `up`, `release`, `status` and `stop` talk
//! to a running supervisor (docs/DESIGN.md, "Control protocol").
//!
//! One request per connection, one JSON line each way; the requests, replies and
//! refusals are DESIGN.md's tables. Here: the wire types and the limits.

pub mod client;
pub mod server;

pub use client::{Peer, RequestError, request, request_until};
pub use server::{ClientId, Clients, ControlSocket};

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::owner::{Owner, OwnerRef};
use crate::process::Pid;
use crate::state::record::Record;
use crate::sys;

/// Longest request accepted, newline included.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// How long one connection may take, from `accept` to the last byte of the reply.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// Connections served at once, including those whose reply waits for readiness;
/// more are refused with [`Refusal::Busy`]. Fewer where the descriptor limit is
/// low: see [`client_limit`].
pub const MAX_CLIENTS: usize = 256;

/// Descriptors kept for the supervisor's own work (its files, its looks at
/// processes, the handles on the tree it tears down), out of reach of control
/// clients: clients that used them up would make every look at an owner or a
/// member fail.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// How many connections may be open at once under this process's descriptor
/// limit: [`MAX_CLIENTS`], or what the limit leaves past
/// [`RESERVED_DESCRIPTORS`], but at least one, so `stop` can always get through.
pub fn client_limit() -> usize {
    match sys::descriptor_limit() {
        Some(limit) => usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS))
            .unwrap_or(MAX_CLIENTS)
            .clamp(1, MAX_CLIENTS),
        None => MAX_CLIENTS,
    }
}

/// How long a client waits for the supervisor to take its request and answer
/// one that is answered at once (`status`, `stop`, `release`), counted from
/// before it connects: as long as the supervisor's own [`REQUEST_DEADLINE`],
/// which a running supervisor answers well within.
pub const IO_TIMEOUT: Duration = REQUEST_DEADLINE;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Adds leases for these owners, each named by its identity (PID and start
    /// time, as the client saw it); answered once the server is ready. `client` is
    /// the client's own PID as it sees itself: it must be the PID the kernel gives
    /// for the peer, or the client is in another PID namespace and its PIDs would
    /// be misread here.
    Attach {
        owners: Vec<Owner>,
        client: Pid,
        /// How long the client waits for a reply held until readiness (else
        /// [`DEFAULT_HOLD`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
    },
    /// Drops the lease of `owner`, or every lease when it is absent. With an
    /// owner, `client` is required, as for `attach`.
    Release {
        #[serde(default)]
        owner: Option<OwnerRef>,
        #[serde(default)]
        client: Option<Pid>,
    },
    /// The record; with `wait_ready`, answered once the server is ready.
    Status {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        wait_ready: bool,
        /// As for `attach`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
    },
    Stop,
}

/// How long a reply held until readiness waits when the client says nothing:
/// `up`'s default ready timeout.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(30);

impl Request {
    /// Whether the reply waits until the server is ready.
    pub fn waits_for_ready(&self) -> bool {
        matches!(
            self,
            Request::Attach { .. }
                | Request::Status {
                    wait_ready: true,
                    ..
                }
        )
    }

    /// How long a reply held until readiness may wait (bounded like every
    /// duration: at most 365 days).
    pub fn hold(&self) -> Duration {
        let asked = match *self {
            Request::Attach { wait_ms, .. } | Request::Status { wait_ms, .. } => wait_ms,
            _ => None,
        };
        asked
            .map_or(DEFAULT_HOLD, Duration::from_millis)
            .min(crate::duration::MAX_DURATION)
    }
}

/// Why a request was refused: what a client branches on (the `error` text is for
/// people).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The server is being torn down; start a new one once this one is gone.
    Stopping,
    /// `release` of a PID that holds no lease.
    NotOwner,
    /// `attach` of a PID that is not running, or that now belongs to another
    /// process than the one the client named (another start time).
    OwnerNotRunning,
    /// `attach` of a process of the server's own tree: the server could never go.
    OwnerInTree,
    /// A request naming PIDs from a client in another PID namespace, whose PIDs
    /// cannot be read here.
    ForeignNamespace,
    /// `attach` of a PID that can never exit (init, a kernel thread, the supervisor).
    ImmortalOwner,
    /// `attach` with an empty owner list.
    NoOwners,
    /// More leases than a supervisor keeps.
    TooManyOwners,
    /// Not one JSON request on one line.
    BadRequest,
    /// Over [`MAX_MESSAGE`].
    TooLarge,
    /// The request was not complete within [`REQUEST_DEADLINE`].
    Timeout,
    /// Too many connections at once; try again.
    Busy,
    /// The peer runs as another user.
    ForeignPeer,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Refusal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
}

impl Reply {
    pub fn ok(record: Record) -> Reply {
        Reply {
            ok: true,
            kind: None,
            error: None,
            record: Some(record),
        }
    }

    pub fn refused(kind: Refusal, message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            kind: Some(kind),
            error: Some(message.into()),
            record: None,
        }
    }

    fn line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::StartTime;

    #[test]
    fn requests_have_the_documented_wire_form() {
        let attach: Request = serde_json::from_str(
            r#"{"op":"attach","owners":[{"pid":12,"start":7},{"pid":13,"start":8}],"client":5}"#,
        )
        .unwrap();
        let owner = |pid, start| Owner {
            pid: Pid::new(pid).unwrap(),
            start: StartTime(start),
        };
        assert_eq!(
            attach,
            Request::Attach {
                owners: vec![owner(12, 7), owner(13, 8)],
                client: Pid::new(5).unwrap(),
                wait_ms: None,
            }
        );
        let all: Request = serde_json::from_str(r#"{"op":"release"}"#).unwrap();
        assert_eq!(
            all,
            Request::Release {
                owner: None,
                client: None
            }
        );
        let one: Request =
            serde_json::from_str(r#"{"op":"release","owner":{"pid":12},"client":5}"#).unwrap();
        assert_eq!(
            one,
            Request::Release {
                owner: Some(OwnerRef {
                    pid: Pid::new(12).unwrap(),
                    start: None
                }),
                client: Pid::new(5),
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"explode"}"#).is_err());
        // Bare PIDs are not identities; neither is a PID of 0.
        for bad in [
            r#"{"op":"attach","owners":[12],"client":5}"#,
            r#"{"op":"attach","owners":[{"pid":0,"start":1}],"client":5}"#,
            r#"{"op":"attach","owners":[{"pid":12,"start":1}]}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&Request::Stop).unwrap(),
            r#"{"op":"stop"}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Status {
                wait_ready: false,
                wait_ms: None
            })
            .unwrap(),
            r#"{"op":"status"}"#
        );
        let waiting: Request =
            serde_json::from_str(r#"{"op":"status","wait_ready":true}"#).unwrap();
        assert_eq!(
            waiting,
            Request::Status {
                wait_ready: true,
                wait_ms: None
            }
        );
    }

    #[test]
    fn refusals_carry_a_kind() {
        let line = Reply::refused(Refusal::Stopping, "stopping").line();
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"ok\":false,\"kind\":\"stopping\",\"error\":\"stopping\"}\n"
        );
    }
}
