//! `ocwrap release`: drop one owner's lease, or all of them, and return at once.
//!
//! This is what a session-end hook calls, so it does one request over the control
//! socket and never waits for the teardown the release may start.
//!
//! JSON (one object): `{"status":"released","name":…,"released":PID|null,
//! "owners":[{"pid":…,"start":…}]}` (the leases left), or `{"status":"error",
//! "name":…,"error":…}` with exit 1.

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
    match (outcome, args.json) {
        (Ok(owners), true) => {
            print_json(&ReleaseJson::Released {
                name: stem.to_string(),
                released: args.owner_pid,
                owners,
            });
            Ok(exit::SUCCESS)
        }
        (Ok(owners), false) => {
            let left: Vec<String> = owners.iter().map(|o| o.pid.to_string()).collect();
            print_line(&format!(
                "released {}; owners left: {}",
                args.owner_pid
                    .map_or_else(|| "every owner".to_string(), |p| format!("owner {p}")),
                if left.is_empty() {
                    "none (tearing down)".to_string()
                } else {
                    left.join(",")
                }
            ));
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

fn release(state: &StateDir, stem: &str, owner: Option<Pid>) -> Result<Vec<Owner>, Error> {
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
    let reply = control::request(&state.socket_path(stem), &request)
        .map_err(|e| control_error(format!("control socket: {e}")))?;
    match (reply.ok, reply.record) {
        (true, Some(record)) => Ok(record.owners),
        _ => Err(control_error(
            reply.error.unwrap_or_else(|| "refused".into()),
        )),
    }
}
