//! `ocwrap release`: drop one owner's lease, or all of them, and return at once.
//!
//! This is what a session-end hook calls, so it does one request over the control
//! socket and never waits for the teardown the release may start.
//!
//! The owner is named as `up` names owners (`--owner-pid`, `--owner-ancestor`,
//! `--owner parent|session`), one of them; with none, every lease is dropped.
//!
//! JSON (one object): `{"status":"released","name":…,"released":PID|null,
//! "found_by":…|null,"owners":[{"pid":…,"start":…}]}` (the leases left);
//! `{"status":"unconfirmed","name":…,"released":PID|null,"found_by":…,"message":…}`
//! (exit 0) when the request went out whole and the supervisor did not answer in
//! time (a stopped one acts on it when it runs again); or
//! `{"status":"error","name":…,"kind":…,"error":…}` with exit 1.

use std::time::Instant;

use serde::Serialize;

use super::{open_state, print_json, print_line};
use crate::cli::ReleaseArgs;
use crate::config::{self, OwnerSpec};
use crate::control::{self, Peer, Refusal, Request};
use crate::error::Error;
use crate::exit;
use crate::identity::Name;
use crate::owner::OwnerRef;
use crate::owner::{self, FoundBy, Owner};
use crate::process::Pid;
use crate::state::StateDir;

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
enum ReleaseJson {
    Released {
        name: String,
        released: Option<Pid>,
        /// How the released owner was found (null: every lease).
        found_by: Option<FoundBy>,
        owners: Vec<Owner>,
    },
    /// Sent whole, not answered in time: carried out when the supervisor runs.
    Unconfirmed {
        name: String,
        released: Option<Pid>,
        found_by: Option<FoundBy>,
        message: String,
    },
    Error {
        name: String,
        kind: &'static str,
        error: String,
    },
}

pub fn run(args: ReleaseArgs) -> Result<u8, Error> {
    // clap requires --name, --port or --socket, so there is always a name.
    let Some(stem) = args.select.stem() else {
        return Err(crate::config::usage(
            clap::error::ErrorKind::MissingRequiredArgument,
            "release needs --name, --port or --socket".into(),
        ));
    };
    let owner = if args.owners.is_empty() {
        None
    } else {
        whose(&config::owner_spec(&args.owners)?, owner::Caller::RETURNS)?
    };
    let state = open_state(args.state.state_dir.as_deref())?;
    let outcome = release(&state, &stem, owner, Instant::now() + control::IO_TIMEOUT);
    Ok(report(&stem, owner, outcome, args.json))
}

/// The one owner of `spec` whose lease to drop, found as `up` finds owners.
pub fn whose(spec: &OwnerSpec, caller: owner::Caller<'_>) -> Result<Option<(Pid, FoundBy)>, Error> {
    let named = usize::from(spec.parent)
        + usize::from(spec.session)
        + spec.pids.len()
        + usize::from(spec.ancestor.is_some());
    if named != 1 {
        return Err(config::usage(
            clap::error::ErrorKind::ArgumentConflict,
            "release drops one owner's lease: give one of --owner-pid PID, --owner-ancestor NAME, --owner parent|session (or none of them, for every lease)".into(),
        ));
    }
    Ok(owner::find(spec, caller)?.into_iter().next())
}

/// Says what became of a release, as `ocwrap release` does (one JSON object with
/// `json`, else a line on stdout and errors on stderr); returns the exit code.
pub fn report(
    stem: &Name,
    owner: Option<(Pid, FoundBy)>,
    outcome: Result<Released, Error>,
    json: bool,
) -> u8 {
    let released = owner.map(|(pid, _)| pid);
    let found_by = owner.map(|(_, by)| by);
    let name = stem.to_string();
    match (outcome, json) {
        (Ok(Released::Confirmed(owners)), true) => {
            print_json(&ReleaseJson::Released {
                name,
                released,
                found_by,
                owners,
            });
            exit::SUCCESS
        }
        // Not a failure: the supervisor has the request and acts on it when it
        // runs again.
        (Ok(Released::Unconfirmed(message)), true) => {
            print_json(&ReleaseJson::Unconfirmed {
                name,
                released,
                found_by,
                message,
            });
            exit::SUCCESS
        }
        (Ok(done), false) => {
            print_line(&done.summary(stem, released));
            if let Released::Unconfirmed(message) = &done {
                crate::diag::say(format_args!("{stem}: {message}"));
            }
            exit::SUCCESS
        }
        (Err(e), true) => {
            print_json(&ReleaseJson::Error {
                name,
                kind: e.kind(),
                error: crate::error::one_line(&e),
            });
            e.exit_code()
        }
        (Err(e), false) => {
            crate::diag::say(crate::error::one_line(&e));
            e.exit_code()
        }
    }
}

/// What became of a release that reached a live supervisor.
pub enum Released {
    /// It answered: the leases left.
    Confirmed(Vec<Owner>),
    /// It has the whole request but did not answer in time (stopped, say).
    Unconfirmed(String),
}

impl Released {
    /// One line on what was done for `owner` (none: every lease).
    pub fn summary(&self, stem: &Name, owner: Option<Pid>) -> String {
        let what = owner.map_or_else(|| "every owner".to_string(), |p| format!("owner {p}"));
        match self {
            Released::Confirmed(owners) if owners.is_empty() => {
                format!("released {what}; owners left: none (tearing down)")
            }
            Released::Confirmed(owners) => {
                let left: Vec<String> = owners.iter().map(|o| o.pid.to_string()).collect();
                format!("released {what}; owners left: {}", left.join(","))
            }
            Released::Unconfirmed(_) => format!("release of {what} sent to {stem}, not confirmed"),
        }
    }
}

/// One release request, answered by `deadline` (or sent whole by then:
/// unconfirmed).
pub fn release(
    state: &StateDir,
    name: &Name,
    owner: Option<(Pid, FoundBy)>,
    deadline: Instant,
) -> Result<Released, Error> {
    let owner = owner.map(|(pid, _)| pid);
    let peer = Peer::new(state, name.stem());
    if !peer.is_live() {
        return Err(Error::NotRunning(name.clone()));
    }
    let control_error = |message: String| Error::Control {
        name: name.clone(),
        message,
    };
    let request = Request::Release {
        owner: owner.map(OwnerRef::observe),
        client: owner.map(|_| Pid::current()),
    };
    let reply = match peer.ask(&request, deadline) {
        Ok(reply) => reply,
        Err(e) if e.was_sent() => return Ok(Released::Unconfirmed(e.to_string())),
        // A supervisor whose socket is closed is tearing down (or gone): once
        // its lock is free, there is nothing to release.
        Err(e) => {
            return Err(if peer.wait_gone(deadline) {
                Error::NotRunning(name.clone())
            } else {
                control_error(e.to_string())
            });
        }
    };
    match (reply.ok, reply.record) {
        (true, Some(record)) => Ok(Released::Confirmed(record.owners)),
        _ if reply.kind == Some(Refusal::NotOwner) => Err(Error::NotOwner {
            name: name.clone(),
            message: reply.error.unwrap_or_else(|| "holds no lease".into()),
        }),
        _ => Err(control_error(
            reply.error.unwrap_or_else(|| "refused".into()),
        )),
    }
}
