//! `ocwrap release`: drop one owner's lease, or all of them, and return at once.
//!
//! This is what a session-end hook calls, so it does one request over the control
//! socket and never waits for the teardown the release may start.
//!
//! JSON (one object): `{"status":"released","name":…,"released":PID|null,
//! "owners":[{"pid":…,"start":…}]}` (the leases left); `{"status":"unconfirmed",
//! "name":…,"released":PID|null,"message":…}` (exit 0) when the request went out
//! whole and the supervisor did not answer in time (a stopped one acts on it when
//! it runs again); or `{"status":"error","name":…,"error":…}` with exit 1.

use serde::Serialize;

use super::{open_state, print_json, print_line};
use crate::cli::ReleaseArgs;
use crate::control::{self, OwnerRef, Request};
use crate::error::Error;
use crate::exit;
use crate::owner::Owner;
use crate::process::Pid;
use crate::record;
use crate::state::StateDir;

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
enum ReleaseJson {
    Released {
        name: String,
        released: Option<Pid>,
        owners: Vec<Owner>,
    },
    /// Sent whole, not answered in time: carried out when the supervisor runs.
    Unconfirmed {
        name: String,
        released: Option<Pid>,
        message: String,
    },
    Error {
        name: String,
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
    let state = open_state(args.state.state_dir.as_deref())?;
    let outcome = release(&state, &stem, args.owner_pid);
    let what = args
        .owner_pid
        .map_or_else(|| "every owner".to_string(), |p| format!("owner {p}"));
    match (outcome, args.json) {
        (Ok(Released::Confirmed(owners)), true) => {
            print_json(&ReleaseJson::Released {
                name: stem.to_string(),
                released: args.owner_pid,
                owners,
            });
            Ok(exit::SUCCESS)
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
            Ok(exit::SUCCESS)
        }
        // Not a failure: the supervisor has the request and acts on it when it
        // runs again.
        (Ok(Released::Unconfirmed(message)), true) => {
            print_json(&ReleaseJson::Unconfirmed {
                name: stem.to_string(),
                released: args.owner_pid,
                message,
            });
            Ok(exit::SUCCESS)
        }
        (Ok(Released::Unconfirmed(message)), false) => {
            print_line(&format!("release of {what} sent to {stem}, not confirmed"));
            crate::diag::say(format_args!("{stem}: {message}"));
            Ok(exit::SUCCESS)
        }
        (Err(e), true) => {
            print_json(&ReleaseJson::Error {
                name: stem.to_string(),
                error: crate::error::one_line(&e),
            });
            Ok(e.exit_code())
        }
        (Err(e), false) => Err(e),
    }
}

/// What became of a release that reached a live supervisor.
enum Released {
    /// It answered: the leases left.
    Confirmed(Vec<Owner>),
    /// It has the whole request but did not answer in time (stopped, say).
    Unconfirmed(String),
}

fn release(state: &StateDir, stem: &str, owner: Option<Pid>) -> Result<Released, Error> {
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
    let reply = match control::request(&state.socket_path(stem), &request) {
        Ok(reply) => reply,
        Err(e) if e.was_sent() => return Ok(Released::Unconfirmed(e.to_string())),
        Err(e) => return Err(control_error(e.to_string())),
    };
    match (reply.ok, reply.record) {
        (true, Some(record)) => Ok(Released::Confirmed(record.owners)),
        _ => Err(control_error(
            reply.error.unwrap_or_else(|| "refused".into()),
        )),
    }
}
