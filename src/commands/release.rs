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
use crate::cli::{OwnerArgs, ReleaseArgs};
use crate::config;
use crate::control::{self, OwnerRef, Refusal, Request};
use crate::error::Error;
use crate::exit;
use crate::owner::{self, FoundBy, Owner};
use crate::process::Pid;
use crate::record;
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
    // clap requires --name or --port, so there is always a name.
    let Some(stem) = args.select.stem() else {
        return Err(crate::config::usage(
            clap::error::ErrorKind::MissingRequiredArgument,
            "release needs --name or --port".into(),
        ));
    };
    let owner = whose(&args.owners, None)?;
    let state = open_state(args.state.state_dir.as_deref())?;
    let deadline = Instant::now() + control::IO_TIMEOUT;
    Ok(release_and_report(
        &state, &stem, owner, args.json, deadline,
    ))
}

/// The one owner whose lease to drop, found as `up` finds owners, or `None` (no
/// owner option): every lease. `session_id` is a hook's.
pub fn whose(raw: &OwnerArgs, session_id: Option<&str>) -> Result<Option<(Pid, FoundBy)>, Error> {
    if raw.is_empty() {
        return Ok(None);
    }
    let spec = config::owner_spec(raw)?;
    let named = usize::from(spec.parent)
        + usize::from(spec.session)
        + spec.pids.len()
        + usize::from(spec.ancestor.is_some());
    if spec.is_none() || named != 1 {
        return Err(config::usage(
            clap::error::ErrorKind::ArgumentConflict,
            "release drops one owner's lease: give one of --owner-pid PID, --owner-ancestor NAME, --owner parent|session (or none of them, for every lease)".into(),
        ));
    }
    let caller = owner::Caller {
        session_id,
        returns: true,
    };
    Ok(owner::find(&spec, caller)?.into_iter().next())
}

/// Releases and reports as `ocwrap release` does; returns the exit code.
pub fn release_and_report(
    state: &StateDir,
    stem: &str,
    owner: Option<(Pid, FoundBy)>,
    json: bool,
    deadline: Instant,
) -> u8 {
    let outcome = release(state, stem, owner.map(|(pid, _)| pid), deadline);
    let released = owner.map(|(pid, _)| pid);
    let found_by = owner.map(|(_, by)| by);
    let what = released.map_or_else(|| "every owner".to_string(), |p| format!("owner {p}"));
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
        (Ok(Released::Confirmed(owners)), false) => {
            let left: Vec<String> = owners.iter().map(|o| o.pid.to_string()).collect();
            print_line(&format!(
                "released {what}; owners left: {}",
                if left.is_empty() {
                    "none (tearing down)".to_string()
                } else {
                    left.join(",")
                }
            ));
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
        (Ok(Released::Unconfirmed(message)), false) => {
            print_line(&format!("release of {what} sent to {stem}, not confirmed"));
            crate::diag::say(format_args!("{stem}: {message}"));
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

/// One release request, answered by `deadline` (or sent whole by then:
/// unconfirmed).
pub fn release(
    state: &StateDir,
    stem: &str,
    owner: Option<Pid>,
    deadline: Instant,
) -> Result<Released, Error> {
    if !record::is_held(&state.lock_path(stem)) {
        return Err(Error::NotRunning(stem.to_string()));
    }
    let control_error = |message: String| Error::Control {
        name: stem.to_string(),
        message,
    };
    let request = Request::Release {
        owner: owner.map(OwnerRef::observe),
        client: owner.map(|_| Pid::current()),
    };
    let reply = match control::request_until(&state.socket_path(stem), &request, deadline) {
        Ok(reply) => reply,
        Err(e) if e.was_sent() => return Ok(Released::Unconfirmed(e.to_string())),
        // A supervisor whose socket is closed is tearing down (or gone): once
        // its lock is free, there is nothing to release.
        Err(e) => {
            return Err(
                if record::wait_until_free(&state.lock_path(stem), deadline) {
                    Error::NotRunning(stem.to_string())
                } else {
                    control_error(e.to_string())
                },
            );
        }
    };
    match (reply.ok, reply.record) {
        (true, Some(record)) => Ok(Released::Confirmed(record.owners)),
        _ if reply.kind == Some(Refusal::NotOwner) => Err(Error::NotOwner {
            name: stem.to_string(),
            message: reply.error.unwrap_or_else(|| "holds no lease".into()),
        }),
        _ => Err(control_error(
            reply.error.unwrap_or_else(|| "refused".into()),
        )),
    }
}
