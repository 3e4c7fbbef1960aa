//! `--idle-timeout` (SPEC §3 rule 4): the tree goes once the port has had no
//! established connection for DUR. Real TCP connections on 127.0.0.1 to the
//! fixture's listener; waits are on the fixture's lines, pidfds and the record, and
//! the only time assertions are lower bounds on the rule's own duration.

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[cfg(unix)]
use crate::support::assert_no_wake_ups;
use crate::support::{
    Launch, Proc, Running, TempDir, eventually, fixture_bin, free_port, ocwrap_once, status_json,
};
use ocwrap::process::Pid;

/// A supervisor of `fixture tree --listen P`, unowned (so only idleness or a
/// signal ends it), in its own state dir.
struct Served {
    _tmp: TempDir,
    dir: PathBuf,
    port: u16,
}

impl Served {
    fn new() -> Served {
        let tmp = TempDir::new();
        let dir = tmp.path().join("state");
        Served {
            _tmp: tmp,
            dir,
            port: free_port(),
        }
    }

    /// `ocwrap -v --owner none --port P EXTRA… -- fixture tree --listen P FIXTURE…`,
    /// returned once the fixture listens.
    fn run(&self, extra: &[&str], fixture: &[&str]) -> Running {
        let port = self.port.to_string();
        let mut run = Launch::ocwrap()
            .args(["-v", "--owner", "none", "--port", &port])
            .args(["--state-dir", self.dir.to_str().unwrap()])
            .args(extra)
            .server(&[&["tree", "--listen", &port][..], fixture].concat())
            .spawn();
        run.expect_line("listening ");
        run
    }

    fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the fixture's port")
    }
}

/// Asserts that ocwrap ended by the idle rule: exit 0, cause `idle` said with -v.
pub(super) fn assert_ended_idle(run: &mut Running) {
    assert_eq!(run.exit_code(), 0, "idle is our own rule: {}", run.stderr());
    assert!(
        run.stderr().contains("tearing down: idle"),
        "-v names the cause: {}",
        run.stderr()
    );
}

#[test]
fn an_open_connection_keeps_the_server_past_the_timeout_and_its_close_starts_it() {
    let served = Served::new();
    let mut run = served.run(&["--idle-timeout", "2s"], &[]);
    let stream = served.connect();
    let (server, _) = run.server_and_supervisor();
    // Three times the timeout with one long-lived connection (an event stream).
    server.assert_survives(
        Duration::from_secs(6),
        "the server while a client is connected",
    );
    let closed = Instant::now();
    drop(stream);
    server.wait_gone("the server once the last connection closed");
    assert!(
        closed.elapsed() >= Duration::from_secs(2),
        "torn down {:?} after the last connection closed, before --idle-timeout",
        closed.elapsed()
    );
    assert_ended_idle(&mut run);
}

#[test]
fn no_connection_at_all_tears_down_after_the_timeout_and_the_record_says_why() {
    let served = Served::new();
    // The server ignores SIGTERM, so the grace keeps the record in `stopping`.
    let mut run = served.run(
        &["--idle-timeout", "1s", "--grace", "3s"],
        &["--ignore-term"],
    );
    run.expect_line("ready");
    let ready = Instant::now();
    let (server, _) = run.server_and_supervisor();
    let mut record = serde_json::Value::Null;
    eventually("the record says stopping", || {
        record = status_json(&served.dir)["supervisors"][0]["record"].clone();
        record["state"] == "stopping"
    });
    assert!(
        ready.elapsed() >= Duration::from_secs(1),
        "stopping {:?} after the server was ready, before --idle-timeout",
        ready.elapsed()
    );
    assert_eq!(record["stop_cause"], "idle", "{record}");
    server.wait_gone("the server after the grace");
    assert_ended_idle(&mut run);
}

#[test]
fn a_connection_during_the_quiet_restarts_it() {
    let served = Served::new();
    let mut run = served.run(&["--idle-timeout", "3s"], &[]);
    let (server, _) = run.server_and_supervisor();
    // A short request every second or so: never 3 s without a connection.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let stream = served.connect();
        server.assert_survives(Duration::from_millis(1500), "the server with a client");
        drop(stream);
        server.assert_survives(Duration::from_millis(500), "the server between clients");
    }
    server.wait_gone("the server once clients stopped coming");
    assert_ended_idle(&mut run);
}

#[test]
fn up_hands_the_idle_timeout_to_the_supervisor_it_starts() {
    let served = Served::new();
    let port = served.port.to_string();
    let (code, out, err) = ocwrap_once(&[
        "up",
        "--json",
        "--owner",
        "none",
        "--port",
        &port,
        "--idle-timeout",
        "1s",
        "--state-dir",
        served.dir.to_str().unwrap(),
        "--",
        fixture_bin(),
        "tree",
        "--listen",
        &port,
    ]);
    assert_eq!(code, 0, "up: {out} {err}");
    let up: serde_json::Value = serde_json::from_str(&out).expect("up --json");
    assert_eq!(up["status"], "started");
    let supervisor = Pid::new(up["supervisor_pid"].as_i64().unwrap() as i32).unwrap();
    let server = Pid::new(up["pid"].as_i64().unwrap() as i32).unwrap();
    // Idle for 1 s since `up` returned: they may be gone already.
    let pinned = [Proc::pin_announced(supervisor), Proc::pin_announced(server)];
    for proc in &pinned {
        proc.wait_gone("the tree up started, idle for --idle-timeout");
    }
    // The supervisor removes its files before it exits.
    let supervisors = status_json(&served.dir)["supervisors"].clone();
    assert_eq!(
        supervisors,
        serde_json::json!([]),
        "status after the tree is gone"
    );
}

#[cfg(unix)] // Linux only: /proc/PID/syscall and context switches
#[test]
fn without_idle_timeout_a_server_with_a_port_costs_no_wake_ups() {
    let served = Served::new();
    let mut run = served.run(&["--watch-method", "pidfd"], &[]);
    run.expect_line("ready");
    assert_no_wake_ups(&run.pinned, Duration::from_secs(5));
    run.pinned.signal(ocwrap::sys::SIGTERM);
    run.wait_exit();
}

#[test]
fn idle_timeout_without_a_port_is_a_usage_error() {
    for (args, env) in [
        (&["--idle-timeout", "5s"][..], None),
        (&[][..], Some("5s")),
        (&["--port", "4096", "--idle-timeout", "0"][..], None),
    ] {
        let mut launch = Launch::ocwrap().args(args);
        if let Some(value) = env {
            launch = launch.env("OCWRAP_IDLE_TIMEOUT", value);
        }
        let mut run = launch.server(&["tree"]).spawn();
        assert_eq!(run.exit_code(), 2, "{args:?} {env:?}: {}", run.stderr());
        assert!(
            run.stderr().contains("--port") || run.stderr().contains("longer than 0"),
            "{}",
            run.stderr()
        );
        assert!(run.seen.is_empty(), "nothing may start: {:?}", run.seen);
    }
}
