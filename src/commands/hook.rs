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
//! The owner is the session process ([`crate::owner::session`]), never the hook's
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
use crate::config::OwnerSpec;
use crate::config::RunConfig;
use crate::diag;
use crate::error::{self, Error};
use crate::exit;
use crate::identity::Name;
use crate::owner::{Caller, FoundBy};
use crate::process::Pid;
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
    let mut config = RunConfig::from_args(args.run)?;
    diag::set_verbose(config.verbose);
    let Some(stem) = config.name.clone() else {
        return Err(crate::config::usage(
            clap::error::ErrorKind::MissingRequiredArgument,
            "hook needs --port, --socket or --name".into(),
        ));
    };
    let input = read_input()?;
    let session_id = input.session_id.as_deref().filter(|id| !id.is_empty());
    diag::note(format_args!(
        "hook {} (session {})",
        input.hook_event_name,
        session_id.unwrap_or("-")
    ));
    // The session's process and nothing else, unless owners were given.
    if !given_owners {
        config.owners = OwnerSpec {
            session: true,
            ..OwnerSpec::default()
        };
    }
    let caller = Caller {
        session_id,
        returns: true,
        session_required: !given_owners,
    };
    match input.hook_event_name.as_str() {
        "SessionStart" => match up::up_with(&config, args.ready_timeout, caller)? {
            Ok(answer) if !json => {
                diag::note(format_args!("{stem}: {}", answer.status()));
                Ok(exit::SUCCESS)
            }
            outcome => Ok(up::report(outcome, json)),
        },
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
            let owner = release::whose(&config.owners, caller)?;
            // Not swept first, as other commands do: tearing down a dead
            // supervisor's leftovers can take longer than the budget. The next
            // SessionStart (or any other command) sweeps.
            let state = StateDir::open(config.state_dir.as_deref())?;
            let outcome = release::release(&state, &stem, owner, started + SESSION_END_BUDGET);
            Ok(end_session(&stem, owner, outcome, json))
        }
        other => Err(Error::HookInput(format!(
            "ocwrap hook handles SessionStart and SessionEnd, not '{other}'"
        ))),
    }
}

/// Says what became of the release at SessionEnd: with `--json` as `release`
/// does, else nothing on stdout (with `-v`, a line on stderr). A name nobody runs,
/// or a session that holds no lease (the server was external, or already
/// released), is nothing to do: success.
fn end_session(
    stem: &Name,
    owner: Option<(Pid, FoundBy)>,
    outcome: Result<Released, Error>,
    json: bool,
) -> u8 {
    let nothing = matches!(outcome, Err(Error::NotRunning(_) | Error::NotOwner { .. }));
    let code = match outcome {
        outcome if json => release::report(stem, owner, outcome, true),
        Ok(done) => {
            diag::note(done.summary(stem, owner.map(|(pid, _)| pid)));
            exit::SUCCESS
        }
        Err(e) if nothing => {
            diag::note(format_args!("nothing to release: {}", error::one_line(&e)));
            exit::SUCCESS
        }
        Err(e) => {
            diag::say(error::one_line(&e));
            e.exit_code()
        }
    };
    if nothing { exit::SUCCESS } else { code }
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
