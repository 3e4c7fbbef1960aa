//! `ocwrap hook`: a Claude Code hook in one command, for a plugin's
//! `hooks/hooks.json` (docs/DESIGN.md, "`ocwrap hook`").
//!
//! Claude Code runs a command hook with its input as one JSON object on stdin
//! (`hook_event_name`, `session_id`, and SessionStart's `source` or SessionEnd's
//! `reason`), under `sh -c`, and gives SessionEnd 1.5 s. So:
//!
//! - **SessionStart** (any `source`): `up` with the server command and options of
//!   this command line, the owner being this session's process. A second
//!   SessionStart of the same process (after `/clear`, a resume, a compaction)
//!   attaches again, which adds no second lease.
//! - **SessionEnd**: drop this session's lease, unless `reason` is `clear` or
//!   `resume`: then the session process goes on and will want the server again.
//!   Nothing to release (no supervisor, an external server, no lease) is success.
//!   It does not sweep dead supervisors first (their teardown may outlast the
//!   budget); the next command does.
//!
//! The owner is the session process ([`crate::session`]), never the hook's
//! short-lived shell: without a session, the hook fails and starts nothing. Owner
//! options on the command line replace that rule (for testing by hand).
//!
//! Stdout stays empty (Claude Code adds a SessionStart hook's stdout to the
//! session's context) unless `--json` asks for one object. Every failure is one
//! line on stderr and an exit code, and never stops the session: Claude Code takes
//! any failing SessionStart or SessionEnd hook as a non-blocking error. Exit codes:
//! 0 done; 1 `up` or `release` failed; 2 bad command line or hook input (empty,
//! not JSON, over [`MAX_INPUT`], not ended within [`INPUT_WAIT`], an event other
//! than these two); 125 no session found, or ocwrap itself failed.

use std::io::{IsTerminal, Read};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::release::{self, Released};
use super::{print_json, up};
use crate::cli::HookArgs;
use crate::config::RunConfig;
use crate::diag;
use crate::error::{self, Error};
use crate::exit;
use crate::owner::{FoundBy, Lease, Owner};
use crate::process::Pid;
use crate::session;
use crate::state::StateDir;

/// The most hook input read: Claude Code's is a few hundred bytes.
pub const MAX_INPUT: u64 = 1024 * 1024;
/// How long stdin may take to end. Claude Code writes the input and closes it at
/// once; a stdin that stays open (a terminal, a forgotten pipe) is an error well
/// inside the SessionEnd budget.
pub const INPUT_WAIT: Duration = Duration::from_millis(1000);
/// How long a SessionEnd may take in all, inside Claude Code's 1.5 s.
pub const SESSION_END_BUDGET: Duration = Duration::from_millis(1400);

/// The part of Claude Code's hook input that matters here; other fields are
/// ignored.
#[derive(Deserialize)]
struct Input {
    hook_event_name: String,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// SessionEnd reasons after which the session process goes on.
const PROCESS_GOES_ON: &[&str] = &["clear", "resume"];

#[derive(Serialize)]
struct KeptJson<'a> {
    status: &'static str,
    name: &'a str,
    reason: &'a str,
}

pub fn run(args: HookArgs) -> Result<u8, Error> {
    let started = Instant::now();
    let json = args.json;
    let given_owners = !args.run.owners.is_empty();
    let config = RunConfig::from_args(args.run)?;
    diag::set_verbose(config.verbose);
    let Some(stem) = config.name.clone() else {
        return Err(crate::config::usage(
            clap::error::ErrorKind::MissingRequiredArgument,
            "hook needs --port or --name".into(),
        ));
    };
    let input = read_input()?;
    let session_id = input.session_id.as_deref().filter(|id| !id.is_empty());
    diag::note(format_args!(
        "hook {} (session {})",
        input.hook_event_name,
        session_id.unwrap_or("-")
    ));
    match input.hook_event_name.as_str() {
        "SessionStart" => {
            let resolve = || {
                if given_owners {
                    let caller = crate::owner::Caller {
                        session_id,
                        returns: true,
                    };
                    crate::owner::resolve(&config.owners, caller)
                } else {
                    session_lease(session_id).map(|lease| vec![lease])
                }
            };
            let outcome = up::up_with(&config, args.ready_timeout, resolve)?;
            match outcome {
                Ok(answer) if !json => {
                    diag::note(format_args!("{stem}: {}", answer.status()));
                    Ok(exit::SUCCESS)
                }
                outcome => Ok(up::report(outcome, json)),
            }
        }
        "SessionEnd" => {
            let reason = input.reason.as_deref().unwrap_or("other");
            if PROCESS_GOES_ON.contains(&reason) {
                diag::note(format_args!(
                    "{stem}: kept: after '{reason}' the session process goes on"
                ));
                if json {
                    print_json(&KeptJson {
                        status: "kept",
                        name: &stem,
                        reason,
                    });
                }
                return Ok(exit::SUCCESS);
            }
            let owner = if given_owners {
                release::whose(&config_owner_args(&config), session_id)?
            } else {
                let lease = session_pid(session_id)?;
                Some(lease)
            };
            // Not swept first, as other commands do: tearing down a dead
            // supervisor's leftovers can take longer than the budget. The next
            // SessionStart (or any other command) sweeps.
            let state = StateDir::open(config.state_dir.as_deref())?;
            let deadline = started + SESSION_END_BUDGET;
            Ok(end_session(&state, &stem, owner, json, deadline))
        }
        other => Err(Error::HookInput(format!(
            "ocwrap hook handles SessionStart and SessionEnd, not '{other}'"
        ))),
    }
}

/// Releases at SessionEnd. A name nobody runs, or a session that holds no lease
/// (the server was external, or already released), is nothing to do.
fn end_session(
    state: &StateDir,
    stem: &str,
    owner: Option<(Pid, FoundBy)>,
    json: bool,
    deadline: Instant,
) -> u8 {
    if json {
        return release::release_and_report(state, stem, owner, json, deadline);
    }
    match release::release(state, stem, owner.map(|(pid, _)| pid), deadline) {
        Ok(Released::Confirmed(left)) => {
            diag::note(format_args!(
                "{stem}: released; {} owner(s) left",
                left.len()
            ));
            exit::SUCCESS
        }
        Ok(Released::Unconfirmed(message)) => {
            diag::note(format_args!(
                "{stem}: release sent, not confirmed: {message}"
            ));
            exit::SUCCESS
        }
        Err(e @ (Error::NotRunning(_) | Error::NotOwner { .. })) => {
            diag::note(format_args!("nothing to release: {}", error::one_line(&e)));
            exit::SUCCESS
        }
        Err(e) => {
            diag::say(error::one_line(&e));
            e.exit_code()
        }
    }
}

/// The owner options of the command line, back in their raw form for
/// [`release::whose`].
fn config_owner_args(config: &RunConfig) -> crate::cli::OwnerArgs {
    let spec = &config.owners;
    crate::cli::OwnerArgs {
        owner_pids: spec.pids.clone(),
        owner_ancestor: spec.ancestor.clone(),
        owner: if spec.session {
            Some(crate::cli::OwnerMode::Session)
        } else if spec.parent {
            Some(crate::cli::OwnerMode::Parent)
        } else {
            None
        },
    }
}

/// This session's process, found strictly: no parent fallback.
fn session_pid(session_id: Option<&str>) -> Result<(Pid, FoundBy), Error> {
    let found = session::find(session_id).ok_or(Error::NoSession)?;
    diag::note(format_args!("owner {}: {}", found.pid, found.by.describe()));
    Ok((found.pid, found.by))
}

fn session_lease(session_id: Option<&str>) -> Result<Lease, Error> {
    let (pid, found_by) = session_pid(session_id)?;
    if let Some(reason) = crate::owner::immortal(pid) {
        return Err(Error::ImmortalOwner { pid, reason });
    }
    let owner = Owner::observe(pid).ok_or(Error::OwnerNotRunning(pid))?;
    Ok(Lease {
        pid,
        start: owner.start,
        found_by,
    })
}

/// Reads and parses the hook's input: all of stdin, at most [`MAX_INPUT`] bytes,
/// ended within [`INPUT_WAIT`]. The read runs on its own thread so that a stdin
/// that never ends cannot hold this process; the process exits soon after, and
/// the thread with it.
fn read_input() -> Result<Input, Error> {
    if std::io::stdin().is_terminal() {
        return Err(Error::HookInput(
            "stdin is a terminal: Claude Code passes the hook's input as JSON on stdin".into(),
        ));
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let read = std::io::stdin()
            .lock()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut bytes);
        let _ = tx.send(read.map(|_| bytes));
    });
    let bytes = match rx.recv_timeout(INPUT_WAIT) {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return Err(Error::HookInput(format!("cannot read stdin: {e}"))),
        Err(_) => {
            return Err(Error::HookInput(format!(
                "stdin did not end within {} ms",
                INPUT_WAIT.as_millis()
            )));
        }
    };
    parse_input(&bytes)
}

fn parse_input(bytes: &[u8]) -> Result<Input, Error> {
    if bytes.len() as u64 > MAX_INPUT {
        return Err(Error::HookInput(format!(
            "more than {} KiB on stdin",
            MAX_INPUT / 1024
        )));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::HookInput(
            "stdin is empty: Claude Code passes the hook's input as JSON on stdin".into(),
        ));
    }
    serde_json::from_slice::<Input>(bytes).map_err(|e| {
        Error::HookInput(format!(
            "not a hook's JSON (an object with hook_event_name): {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_input_is_read_as_claude_code_writes_it() {
        let input = parse_input(
            br#"{"session_id":"abc","transcript_path":"/t","cwd":"/w","hook_event_name":"SessionEnd","reason":"clear"}"#,
        )
        .unwrap();
        assert_eq!(input.hook_event_name, "SessionEnd");
        assert_eq!(input.session_id.as_deref(), Some("abc"));
        assert_eq!(input.reason.as_deref(), Some("clear"));
        for bad in [
            &b""[..],
            b"  \n",
            b"{}",
            b"[]",
            b"null",
            b"{\"hook_event_name\":5}",
            b"{\"hook_event_name\":\"SessionStart\"",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(parse_input(bad), Err(Error::HookInput(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let huge = vec![b' '; MAX_INPUT as usize + 1];
        assert!(matches!(parse_input(&huge), Err(Error::HookInput(_))));
    }
}
