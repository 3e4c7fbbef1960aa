//! The `__supervise` handshake on its own: a supervisor handed a config and owners
//! over descriptor 3 answers `registered`, then `ready` or `failed`, and takes
//! the owners exactly as handed over — an owner whose start time does not match
//! (its PID was reused after `up` read it) is not taken for the owner.

use std::process::{Command, Stdio};
use std::time::Instant;

use clap::Parser;

use crate::support::{DEADLINE, Proc, TempDir, fixture_bin, ocwrap_bin, owner};
use ocwrap::cli::Cli;
use ocwrap::config::RunConfig;
use ocwrap::handoff::{Channel, Event, Handoff, SUBCOMMAND};
use ocwrap::owner::Owner;
use ocwrap::process::{Pid, StartTime};
use ocwrap::sys;

/// Starts `ocwrap __supervise` with a handoff for `ocwrap ARGS… -- fixture tree`
/// and the given owners; returns the supervisor and our end of the channel.
fn hand_off(args: &[&str], owners: Vec<Owner>) -> (std::process::Child, Channel) {
    let mut argv = vec!["ocwrap"];
    argv.extend_from_slice(args);
    argv.extend(["--", fixture_bin(), "tree", "--children", "1"]);
    let cli = Cli::try_parse_from(argv).expect("a valid command line");
    let config = RunConfig::from_args(cli.run).expect("a valid config");
    let (ours, theirs) = sys::HandoffChannel::pair().unwrap();
    let mut command = Command::new(ocwrap_bin());
    command
        .arg(SUBCOMMAND)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    theirs.pass_to(&mut command);
    let child = command.spawn().expect("start ocwrap __supervise");
    drop(theirs);
    let mut channel = Channel::new(ours);
    channel
        .send(&Handoff { config, owners })
        .expect("send the handoff");
    (child, channel)
}

fn next(channel: &mut Channel) -> Option<Event> {
    channel
        .next(Instant::now() + DEADLINE)
        .expect("an answer within the deadline")
}

#[test]
fn an_owner_with_another_start_time_is_treated_as_gone() {
    let tmp = TempDir::new();
    let dir = tmp.path().join("state");
    let session = owner();
    let real = sys::proc_info(session.pinned.pid).unwrap().start;
    let reused = Owner {
        pid: session.pinned.pid,
        start: StartTime(real.0 + 1),
    };
    let (mut child, mut channel) = hand_off(
        &["--state-dir", dir.to_str().unwrap(), "--name", "h"],
        vec![reused],
    );
    let supervisor = Proc::pin(Pid::from_u32(child.id()).unwrap());
    assert_eq!(next(&mut channel), Some(Event::Registered));
    let Some(Event::Ready { record }) = next(&mut channel) else {
        panic!("expected ready");
    };
    // Its supervisor tears it down at once: it may be gone already.
    let server = Proc::pin_announced(record.server.pid);
    // Its only lease names a process that is not the one running under that PID:
    // the supervisor finds it gone and tears down, while the process lives on.
    server.wait_gone("the server of a supervisor whose only owner was a reused PID");
    supervisor.wait_gone("the supervisor");
    assert_eq!(
        child.wait().unwrap().code(),
        Some(0),
        "torn down by its own rule"
    );
    assert!(
        session.pinned.is_running(),
        "the process under the reused PID lives"
    );
}

#[test]
fn an_owner_with_its_true_start_time_holds_a_lease_and_failure_is_reported() {
    let tmp = TempDir::new();
    let dir = tmp.path().join("state");
    let mut session = owner();
    let true_owner = Owner {
        pid: session.pinned.pid,
        start: sys::proc_info(session.pinned.pid).unwrap().start,
    };
    let (mut child, mut channel) = hand_off(
        &["--state-dir", dir.to_str().unwrap(), "--name", "t"],
        vec![true_owner],
    );
    assert_eq!(next(&mut channel), Some(Event::Registered));
    let Some(Event::Ready { record }) = next(&mut channel) else {
        panic!("expected ready");
    };
    assert_eq!(record.owners, [true_owner]);
    assert_eq!(next(&mut channel), None, "the channel closes after ready");
    let server = Proc::pin(record.server.pid);
    crate::support::kill_and_reap(&mut session);
    server.wait_gone("the server after its owner");
    assert_eq!(child.wait().unwrap().code(), Some(0));

    // A second supervisor for a name that is held answers `failed`, then ends.
    let mut blocker = owner();
    let (mut first, mut channel) = hand_off(
        &["--state-dir", dir.to_str().unwrap(), "--name", "held"],
        vec![Owner {
            pid: blocker.pinned.pid,
            start: sys::proc_info(blocker.pinned.pid).unwrap().start,
        }],
    );
    assert_eq!(next(&mut channel), Some(Event::Registered));
    let (mut second, mut refused) = hand_off(
        &[
            "--state-dir",
            dir.to_str().unwrap(),
            "--name",
            "held",
            "--owner",
            "none",
        ],
        Vec::new(),
    );
    match next(&mut refused) {
        Some(Event::Failed {
            error,
            exit_status,
            kind,
        }) => {
            assert!(error.contains("already running"), "{error}");
            assert_eq!(kind, "name_held");
            assert_eq!(exit_status, None, "not the server's failure");
        }
        other => panic!("expected failed, got {other:?}"),
    }
    assert_eq!(next(&mut refused), None);
    assert_eq!(second.wait().unwrap().code(), Some(125));
    crate::support::kill_and_reap(&mut blocker);
    Proc::pin(Pid::from_u32(first.id()).unwrap()).wait_gone("the first supervisor");
    assert_eq!(first.wait().unwrap().code(), Some(0));
}
