//! `ocwrap stop`: ask live supervisors to tear down what they started.
//!
//! Only live supervisors (lock held) are asked, over their control sockets; a stale
//! record is left to `gc`. With `--wait`, returns once each supervisor has released
//! its lock, which it does only after its whole tree is gone and its record removed.
//!
//! JSON (one object): `{"status":"stopped"|"not_running","stopped":[{"name":…,
//! "supervisor_pid":…,"server_pid":…}],"not_running":[name…],"unconfirmed":
//! [{"name":…,"kind":…,"error":…}],"stopped_unconfirmed":[name…],"errors":
//! [{"name":…,"kind":…,"error":…}]}`. `unconfirmed`: the request went out whole and the supervisor
//! did not answer in time (a stopped one stops when it runs again), which is not
//! a failure; with `--wait`, such a supervisor is listed under
//! `stopped_unconfirmed` once it is gone.

use serde::Serialize;

use super::{open_state, print_json, print_line};
use crate::cli::StopArgs;
use crate::control::{self, Peer, Request};
use crate::error::Error;
use crate::exit;
use crate::identity::Stem;
use crate::process::Pid;
use crate::state::StateDir;
use crate::state::survey::survey;

#[derive(Serialize, Default)]
struct StopJson {
    status: &'static str,
    stopped: Vec<Stopped>,
    not_running: Vec<Stem>,
    /// Sent whole and not answered in time (stopped, say); with `--wait`, gone
    /// since: `stopped_unconfirmed`.
    unconfirmed: Vec<Failure>,
    stopped_unconfirmed: Vec<Stem>,
    errors: Vec<Failure>,
}

#[derive(Serialize)]
struct Stopped {
    name: Stem,
    supervisor_pid: Pid,
    server_pid: Pid,
}

#[derive(Serialize)]
struct Failure {
    name: Stem,
    /// `control_failed` (see `crate::error::kind`).
    kind: &'static str,
    error: String,
}

pub fn run(args: StopArgs) -> Result<u8, Error> {
    let only = args.select.stem();
    let state = open_state(args.state.state_dir.as_deref())?;
    let targets: Vec<Stem> = match &only {
        Some(name) => vec![name.stem().clone()],
        None => survey(&state, None)
            .into_iter()
            .filter(|e| e.live)
            .map(|e| e.stem)
            .collect(),
    };
    let mut out = StopJson::default();
    for stem in targets {
        stop_one(&state, stem, args.wait, &mut out);
    }
    let reached = out.stopped.len() + out.unconfirmed.len() + out.stopped_unconfirmed.len();
    let failed = !out.errors.is_empty() || (only.is_some() && reached == 0);
    out.status = if reached == 0 && !out.not_running.is_empty() {
        "not_running"
    } else {
        "stopped"
    };
    if args.json {
        print_json(&out);
    } else {
        report(&out, args.wait);
    }
    Ok(if failed { exit::FAILURE } else { exit::SUCCESS })
}

/// Asks one supervisor to stop (and with `wait`, waits for its lock to go), and
/// files the outcome under stopped, not running, or errors.
fn stop_one(state: &StateDir, stem: Stem, wait: bool, out: &mut StopJson) {
    let peer = Peer::new(state, &stem);
    if !peer.is_live() {
        out.not_running.push(stem);
        return;
    }
    let error = |name: Stem, error: String| Failure {
        name,
        kind: crate::error::kind::CONTROL_FAILED,
        error,
    };
    match peer.ask(
        &Request::Stop,
        std::time::Instant::now() + control::IO_TIMEOUT,
    ) {
        Ok(reply) if reply.ok => {
            // The supervisor bounds its own teardown (grace, then the kill wait);
            // this waits for it, as `wait(1)` waits for a child.
            let waited = !wait || peer.wait_gone(forever());
            match (waited, reply.record) {
                (false, _) => out
                    .errors
                    .push(error(stem, "the supervisor still runs".into())),
                (true, Some(r)) => out.stopped.push(Stopped {
                    name: stem,
                    supervisor_pid: r.supervisor.pid,
                    server_pid: r.server.pid,
                }),
                (true, None) => out
                    .errors
                    .push(error(stem, "stop reply without a record".into())),
            }
        }
        Ok(reply) => out
            .errors
            .push(error(stem, reply.error.unwrap_or_default())),
        // Not a failure: it has the request and stops when it runs again.
        Err(e) if e.was_sent() => {
            let waited = !wait || peer.wait_gone(forever());
            if waited && wait {
                out.stopped_unconfirmed.push(stem);
            } else {
                out.unconfirmed.push(error(stem, e.to_string()));
            }
        }
        // The supervisor may have exited between the lock check and the request.
        Err(_) if !peer.is_live() => out.not_running.push(stem),
        Err(e) => out.errors.push(error(stem, e.to_string())),
    }
}

/// The supervisor bounds its own teardown (grace, then the kill wait); `--wait`
/// waits for it, as `wait(1)` waits for a child.
fn forever() -> std::time::Instant {
    crate::duration::deadline_after(std::time::Instant::now(), crate::duration::MAX_DURATION)
}

fn report(out: &StopJson, waited: bool) {
    let verb = if waited { "stopped" } else { "stopping" };
    for s in &out.stopped {
        print_line(&format!(
            "{verb} {} (supervisor pid {}, server pid {})",
            s.name, s.supervisor_pid, s.server_pid
        ));
    }
    for name in &out.stopped_unconfirmed {
        print_line(&format!(
            "stopped {name} (it did not answer the request in time)"
        ));
    }
    for f in &out.unconfirmed {
        print_line(&format!("stop sent to {}, not confirmed", f.name));
        crate::diag::say(format_args!("{}: {}", f.name, f.error));
    }
    for name in &out.not_running {
        crate::diag::say(format_args!("{name}: not running"));
    }
    for f in &out.errors {
        crate::diag::say(format_args!("{}: {}", f.name, f.error));
    }
    if out.stopped.is_empty()
        && out.stopped_unconfirmed.is_empty()
        && out.unconfirmed.is_empty()
        && out.not_running.is_empty()
        && out.errors.is_empty()
    {
        print_line("nothing to stop");
    }
}
