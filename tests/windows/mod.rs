//! The Windows suite, run under Wine by `bash shell/windows.sh test`: the server's tree (the fixture and its grandchild) lives in a
//! kill-on-close job, goes when its owners go, when ocwrap is killed, and at `stop`
//! after the grace; `up` shares one server among concurrent callers; a held name is
//! refused. `kill -9` of ocwrap's Linux process is a Wine-only way to die that no
//! Windows program can cause: `shell/windows.sh` checks it from the shell.
//!
//! A control client of another user cannot be made under Wine (one user, whose
//! token every process carries; `LogonUser` is not implemented): the pipe's access
//! list, which admits only the current user, is checked by a unit test of
//! `sys/windows/` instead.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;

use support::{DEADLINE, Running, StateDir, fixture, fixture_bin, free_port, ocwrap, output};

/// `ocwrap run --state-dir DIR ARGS… -- fixture tree --children 1 EXTRA…`.
fn run_tree(state: &StateDir, args: &[&str], extra: &[&str]) -> Running {
    let mut argv = vec!["run", "--state-dir", state.arg()];
    argv.extend_from_slice(args);
    argv.extend(["--", fixture_bin(), "tree", "--children", "1"]);
    argv.extend_from_slice(extra);
    Running::spawn(ocwrap(&argv))
}

/// A stand-in for a session that owns a server: a fixture that sleeps.
fn owner() -> Running {
    let mut owner = Running::spawn(fixture(&["sleep"]));
    owner.expect("sleeper ");
    owner
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn the_owner_killed_takes_the_whole_tree_and_ocwrap_exits_0() {
    let state = StateDir::new("owner");
    let mut owner = owner();
    let owner_pid = owner.pid().to_string();
    let mut run = run_tree(&state, &["--owner-pid", &owner_pid, "--grace", "1s"], &[]);
    let server = run.expect_proc("server ");
    let child = run.expect_proc("child ");
    run.expect("ready");
    owner.kill();
    server.wait_gone("the server");
    child.wait_gone("the grandchild");
    let status = run.wait();
    assert_eq!(status.code(), Some(0), "stderr: {}", run.stderr());
}

#[test]
fn terminating_ocwrap_takes_the_whole_tree() {
    let state = StateDir::new("terminate");
    let mut run = run_tree(&state, &["--owner", "none"], &[]);
    let server = run.expect_proc("server ");
    let child = run.expect_proc("child ");
    run.expect("ready");
    assert!(server.is_running() && child.is_running());
    // TerminateProcess: no code of ocwrap runs; the job's last handle closes.
    run.kill();
    server.wait_gone("the server");
    child.wait_gone("the grandchild");
}

#[test]
fn stop_takes_the_whole_tree_after_the_grace() {
    let state = StateDir::new("stop");
    let grace = Duration::from_secs(2);
    // --ignore-term: the server ignores Ctrl-Break, the graceful request (which
    // Wine does not deliver anyway), so only the end of the grace ends it.
    let mut run = run_tree(
        &state,
        &["--name", "web", "--owner", "none", "--grace", "2s"],
        &["--ignore-term"],
    );
    let server = run.expect_proc("server ");
    let child = run.expect_proc("child ");
    run.expect("ready");
    let asked = Instant::now();
    let stop = output(ocwrap(&[
        "stop",
        "--name",
        "web",
        "--state-dir",
        state.arg(),
    ]));
    assert!(stop.status.success(), "stop: {}", stop.stderr);
    server.wait_gone("the server");
    child.wait_gone("the grandchild");
    let took = asked.elapsed();
    assert!(
        took >= grace,
        "the tree went after {took:?}, before the grace"
    );
    assert!(took < grace + DEADLINE, "the tree went after {took:?}");
    assert_eq!(run.wait().code(), Some(0), "stderr: {}", run.stderr());
}

#[test]
fn a_second_run_for_a_held_name_is_refused() {
    let state = StateDir::new("held");
    let mut first = run_tree(&state, &["--name", "held", "--owner", "none"], &[]);
    let server = first.expect_proc("server ");
    first.expect("ready");
    let second = output(ocwrap(&[
        "run",
        "--name",
        "held",
        "--owner",
        "none",
        "--state-dir",
        state.arg(),
        "--",
        fixture_bin(),
        "tree",
    ]));
    assert_eq!(second.status.code(), Some(125), "stderr: {}", second.stderr);
    assert!(
        second.stderr.contains("already running"),
        "stderr: {}",
        second.stderr
    );
    assert!(server.is_running(), "the first server was touched");
}

#[test]
fn concurrent_ups_share_one_server_that_goes_with_its_last_owner() {
    let state = StateDir::new("up");
    let mut owners: Vec<Running> = (0..3).map(|_| owner()).collect();
    let ups: Vec<Running> = owners
        .iter()
        .map(|o| {
            let owner_pid = o.pid().to_string();
            Running::spawn(ocwrap(&[
                "up",
                "--json",
                "--name",
                "shared",
                "--owner-pid",
                &owner_pid,
                "--state-dir",
                state.arg(),
                "--",
                fixture_bin(),
                "tree",
                "--children",
                "1",
            ]))
        })
        .collect();
    let mut statuses = Vec::new();
    let mut servers = Vec::new();
    for mut up in ups {
        let line = up.expect("{");
        assert_eq!(up.wait().code(), Some(0), "up: {line}; {}", up.stderr());
        let reply = json(&format!("{{{line}"));
        statuses.push(reply["status"].as_str().unwrap_or_default().to_string());
        servers.push(reply["pid"].as_u64());
    }
    statuses.sort();
    assert_eq!(statuses, ["attached", "attached", "started"], "{servers:?}");
    assert!(
        servers.iter().all(|s| s.is_some() && *s == servers[0]),
        "{servers:?}"
    );
    let server_pid = servers[0].and_then(|p| u32::try_from(p).ok());
    let server = support::Proc::pin(
        server_pid
            .and_then(ocwrap::process::Pid::from_u32)
            .expect("a server PID"),
    );
    let (last, first) = owners.split_last_mut().expect("three owners");
    for owner in first {
        owner.kill();
    }
    assert!(
        server.is_running(),
        "the server went while an owner was left"
    );
    last.kill();
    server.wait_gone("the shared server");
}

/// `ocwrap up --json --port PORT --owner-pid OWNER -- fixture tree --listen PORT EXTRA…`.
fn up_on_port(state: &StateDir, port: &str, owner: &Running, extra: &[&str]) -> support::Output {
    let owner_pid = owner.pid().to_string();
    let mut argv = vec![
        "up",
        "--json",
        "--port",
        port,
        "--owner-pid",
        &owner_pid,
        "--state-dir",
        state.arg(),
        "--",
        fixture_bin(),
        "tree",
        "--listen",
        port,
    ];
    argv.extend_from_slice(extra);
    output(ocwrap(&argv))
}

#[test]
fn up_waits_until_the_port_answers() {
    let state = StateDir::new("port");
    let owner = owner();
    let port = free_port().to_string();
    // The server listens only after 300 ms: `up` answers once the probe connects.
    let started = up_on_port(&state, &port, &owner, &["--listen-after", "300"]);
    assert!(started.status.success(), "up: {}", started.stderr);
    let reply = json(&started.stdout);
    assert_eq!(reply["status"], "started", "{reply}");
    assert_eq!(
        reply["url"],
        format!("http://127.0.0.1:{port}").as_str(),
        "{reply}"
    );
}

#[test]
fn up_reports_a_port_that_already_answers_as_external() {
    let state = StateDir::new("external");
    let owner = owner();
    let port = free_port().to_string();
    let mut outside = Running::spawn(fixture(&["tree", "--listen", &port]));
    outside.expect("listening");
    let external = up_on_port(&state, &port, &owner, &[]);
    assert!(external.status.success(), "up: {}", external.stderr);
    assert_eq!(json(&external.stdout)["status"], "external");
    let status = output(ocwrap(&["status", "--json", "--state-dir", state.arg()]));
    let supervisors = json(&status.stdout)["supervisors"].clone();
    assert_eq!(supervisors, serde_json::json!([]), "nothing was started");
}

#[test]
fn the_default_state_dir_is_under_local_app_data() {
    let state = StateDir::new("appdata");
    std::fs::create_dir_all(state.path()).expect("make the stand-in for %LOCALAPPDATA%");
    let mut status = ocwrap(&["status"]);
    status.env("LOCALAPPDATA", state.path());
    let out = output(status);
    assert!(out.status.success(), "status: {}", out.stderr);
    assert!(
        state.path().join("ocwrap").is_dir(),
        "no %LOCALAPPDATA%\\ocwrap"
    );
}

/// The harness's own guarantee: a process it cannot open never counts as gone,
/// unless no process has the PID (`ERROR_INVALID_PARAMETER`) and it was announced.
#[test]
fn a_failed_pin_fails_the_test_unless_no_such_process_is_left() {
    // No process has this PID: far above any that Windows or Wine hands out here.
    let nobody = ocwrap::process::Pid::new(0x7fff_fffc).expect("a PID");
    assert!(
        !support::Proc::pin_announced(nobody).is_running(),
        "announced, and no such process: gone"
    );
    let strict = std::panic::catch_unwind(|| support::Proc::pin(nobody));
    let message = strict
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned())
        .expect("a pin of no process that must run fails the test");
    assert!(message.contains("cannot open"), "{message:?}");
}
