//! Servers that are not TCP (docs/DESIGN.md, "Readiness"): a broker on a Unix
//! socket (`--socket`), readiness it declares (`--ready notify`, `--ready fd:N`),
//! and the hostile inputs around them. The broker is `ocwrap-fixture broker`, which
//! listens only after its start-up delay and serves each connection until its peer
//! closes it. Waits are on its lines, pidfds, `up`'s answer and the record; the
//! only time assertions are lower bounds on the broker's own delay and the idle
//! rule's duration.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::idle::assert_ended_idle;
use crate::support::{
    Launch, Proc, Running, State, eventually, fixture_bin, kill_and_reap, mkfifo, owner,
    status_json,
};
use ocwrap::process::Pid;
use ocwrap::sys;

/// A state dir and a broker's socket path beside it.
struct Broker {
    state: State,
    socket: PathBuf,
}

impl Broker {
    fn new() -> Broker {
        let state = State::new();
        let socket = state.tmp().path().join("broker.sock");
        Broker { state, socket }
    }

    fn socket(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    /// `ocwrap up --json --state-dir D EXTRA… -- fixture broker FIXTURE…`, to its
    /// end: (exit code, its one JSON object, how long it took).
    fn up(&self, extra: &[&str], fixture: &[&str]) -> (i32, Value, Duration) {
        let began = Instant::now();
        let mut run = Launch::ocwrap()
            .args(["up", "--json", "--state-dir", self.state.arg()])
            .args(extra)
            .arg("--")
            .arg(fixture_bin())
            .arg("broker")
            .args(fixture)
            .spawn();
        let code = run.exit_code();
        let took = began.elapsed();
        let out = run.seen.join("\n");
        let v = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {out:?} {}", run.stderr()));
        (code, v, took)
    }

    /// `up --socket S --owner-pid OWNER -- broker S FIXTURE…`, which must start or
    /// attach.
    fn up_owned(&self, owner: &Running, fixture: &[&str]) -> (Value, Duration) {
        let pid = owner.pinned.pid.to_string();
        let (code, v, took) = self.up(
            &["--socket", self.socket(), "--owner-pid", &pid],
            &[&[self.socket()][..], fixture].concat(),
        );
        assert_eq!(code, 0, "up failed: {v}");
        (v, took)
    }

    /// After a failed `up` of `stem`: the broker its log tail names is gone, and
    /// none of the name's files is left.
    fn assert_nothing_left(&self, tail: &str, stem: &str) {
        let pid = tail
            .lines()
            .find_map(|l| l.strip_prefix("broker "))
            .and_then(|pid| pid.trim().parse::<Pid>().ok())
            .expect("the broker's pid in the log");
        assert!(
            !Proc::pin_announced(pid).is_running(),
            "nothing is left running"
        );
        assert_eq!(self.state.files(stem), Vec::<String>::new());
        let notify = self.state.dir.join(format!("{stem}.notify"));
        assert!(!notify.exists(), "no notify socket is left");
    }

    fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.socket).expect("connect to the broker's socket")
    }
}

fn pid_of(v: &Value, key: &str) -> Pid {
    Pid::new(v[key].as_i64().unwrap_or_else(|| panic!("{key} in {v}")) as i32).unwrap()
}

#[test]
fn a_broker_is_ready_once_its_socket_accepts_is_shared_and_goes_with_its_last_owner() {
    let broker = Broker::new();
    let (mut a, mut b) = (owner(), owner());
    let (started, took) = broker.up_owned(&a, &["--after", "300"]);
    assert_eq!(started["status"], "started", "{started}");
    // Ready means accepting: the socket takes a connection the moment up returns,
    // and up waited for the broker's start-up delay to get there.
    drop(broker.connect());
    assert!(
        took >= Duration::from_millis(300),
        "up returned after {took:?}"
    );
    assert_eq!(started["socket"], broker.socket());
    assert_eq!(started["ready"], "connect");
    assert_eq!(started["url"], Value::Null);
    assert_eq!(started["port"], Value::Null);
    let name = started["name"].as_str().unwrap();
    assert!(name.starts_with("sock-broker.sock-"), "{name}");
    let record = broker.state.record(name);
    assert_eq!(record["socket"], broker.socket());
    assert_eq!(record["ready"], "connect");

    let (attached, _) = broker.up_owned(&b, &[]);
    assert_eq!(attached["status"], "attached", "{attached}");
    assert_eq!(attached["pid"], started["pid"]);

    let server = Proc::pin(pid_of(&started, "pid"));
    let supervisor = Proc::pin(pid_of(&started, "supervisor_pid"));
    kill_and_reap(&mut a);
    server.assert_survives(Duration::from_millis(300), "the broker while B owns it");
    kill_and_reap(&mut b);
    server.wait_gone("the broker once both owners were SIGKILLed");
    supervisor.wait_gone("its supervisor");

    // The broker died by SIGKILL and left its socket file: a stale socket is not
    // a server, so the next up starts a new broker (which replaces the file).
    assert!(
        broker.socket.exists(),
        "the dead broker's socket file stays"
    );
    let mut c = owner();
    let (again, _) = broker.up_owned(&c, &[]);
    assert_eq!(again["status"], "started", "{again}");
    let second = Proc::pin(pid_of(&again, "pid"));
    kill_and_reap(&mut c);
    second.wait_gone("the second broker");
}

#[test]
fn a_socket_the_users_own_broker_holds_is_external_and_never_touched() {
    let broker = Broker::new();
    let mut theirs = Launch::program(fixture_bin())
        .args(["broker", broker.socket()])
        .spawn();
    theirs.expect_line("listening ");
    let mut session = owner();
    let (external, _) = broker.up_owned(&session, &[]);
    assert_eq!(external["status"], "external", "{external}");
    assert_eq!(external["socket"], broker.socket());
    for key in ["name", "pid", "supervisor_pid", "log", "url", "port"] {
        assert_eq!(external[key], Value::Null, "{key}");
    }
    assert_eq!(
        status_json(&broker.state.dir)["supervisors"],
        serde_json::json!([])
    );
    for command in [&["stop", "--all", "--wait"][..], &["gc"]] {
        broker.state.cmd(command[0], &command[1..]);
    }
    kill_and_reap(&mut session);
    theirs
        .pinned
        .assert_survives(Duration::from_millis(300), "the broker started by hand");
    drop(broker.connect());
}

#[test]
fn an_idle_broker_is_stopped_by_the_idle_timeout_and_a_connection_keeps_it() {
    let broker = Broker::new();
    let mut run = broker.state.run(
        &[
            "-v",
            "--owner",
            "none",
            "--socket",
            broker.socket(),
            "--idle-timeout",
            "2s",
        ],
        &["broker", broker.socket()],
    );
    run.expect_line("listening ");
    let server = run.proc("broker");
    let client = broker.connect();
    server.assert_survives(
        Duration::from_secs(4),
        "the broker while a client is connected",
    );
    let closed = Instant::now();
    drop(client);
    server.wait_gone("the broker once its last connection closed");
    assert!(
        closed.elapsed() >= Duration::from_secs(2),
        "gone after {:?}",
        closed.elapsed()
    );
    assert_ended_idle(&mut run);
}

#[test]
fn notify_readiness_waits_for_ready_1_and_removes_its_socket() {
    let broker = Broker::new();
    let (code, started, took) = broker.up(
        &["--owner", "none", "--name", "n", "--ready", "notify"],
        &["-", "--after", "300", "--notify"],
    );
    assert_eq!(code, 0, "{started}");
    assert_eq!(started["status"], "started");
    assert_eq!(started["ready"], "notify");
    assert!(
        took >= Duration::from_millis(300),
        "up returned after {took:?}"
    );
    assert!(
        !broker.state.dir.join("n.notify").exists(),
        "the notify socket goes once the server is ready"
    );
    let server = Proc::pin(pid_of(&started, "pid"));
    broker.state.cmd("stop", &["--name", "n", "--wait"]);
    server.wait_gone("the server after stop");
}

#[test]
fn fd_readiness_waits_for_a_newline_and_a_closed_descriptor_fails_cleanly() {
    let broker = Broker::new();
    let (code, started, took) = broker.up(
        &["--owner", "none", "--name", "f", "--ready", "fd:3"],
        &["-", "--after", "300", "--fd", "3"],
    );
    assert_eq!(code, 0, "{started}");
    assert_eq!(started["ready"], "fd:3");
    assert!(
        took >= Duration::from_millis(300),
        "up returned after {took:?}"
    );
    let server = Proc::pin(pid_of(&started, "pid"));
    broker.state.cmd("stop", &["--name", "f", "--wait"]);
    server.wait_gone("the server after stop");

    let (code, failed, _) = broker.up(
        &[
            "--owner",
            "none",
            "--name",
            "g",
            "--ready",
            "fd:7",
            "--ready-timeout",
            "1s",
        ],
        &["-", "--close-fd", "7"],
    );
    assert_eq!(code, 1, "{failed}");
    assert_eq!(failed["kind"], "not_ready", "{failed}");
    let tail = failed["log_tail"].as_str().unwrap();
    assert!(tail.contains("fd closed"), "{tail}");
    assert!(
        tail.contains("closed descriptor 7 without writing a newline"),
        "{tail}"
    );
    broker.assert_nothing_left(tail, "g");
}

#[test]
fn a_server_that_never_sends_ready_1_fails_at_the_deadline_with_nothing_left() {
    let broker = Broker::new();
    let began = Instant::now();
    let (code, failed, _) = broker.up(
        &[
            "--owner",
            "none",
            "--name",
            "q",
            "--ready",
            "notify",
            "--ready-timeout",
            "1s",
        ],
        &["-"],
    );
    assert_eq!(code, 1, "{failed}");
    assert_eq!(failed["kind"], "not_ready", "{failed}");
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "not before the deadline"
    );
    let tail = failed["log_tail"].as_str().unwrap();
    broker.assert_nothing_left(tail, "q");
}

/// `run -v --stdin inherit --ready notify --name N -- broker - --wait-go --notify
/// FIXTURE…`, with its stdin to write `go` to.
fn declared_broker(state: &State, name: &str, fixture: &[&str]) -> Running {
    Launch::ocwrap()
        .args([
            "--state-dir",
            state.arg(),
            "-v",
            "--owner",
            "none",
            "--stdin",
            "inherit",
        ])
        .args(["--name", name, "--ready", "notify"])
        .stdin(Stdio::piped())
        .server(&[&["broker", "-", "--wait-go", "--notify"][..], fixture].concat())
        .spawn()
}

fn say_go(run: &mut Running) {
    let stdin = run.child.stdin.as_mut().expect("the supervisor's stdin");
    stdin.write_all(b"go\n").expect("write go");
}

#[test]
fn ready_1_from_outside_the_tree_is_ignored() {
    let state = State::new();
    let mut run = declared_broker(&state, "o", &[]);
    run.expect_line("broker ");
    let notify = state.dir.join("o.notify");
    sys::fixture::send_notify(&notify, b"READY=1\n").expect("send READY=1 as the test");
    run.expect_stderr(&format!("READY=1 from pid {}", Pid::current()));
    run.expect_stderr("which is not in the server's tree: ignored");
    assert_eq!(state.served("o")["record"]["state"], "starting");
    say_go(&mut run);
    run.expect_line("notified");
    eventually("the record says ready", || {
        state.record_now("o").is_some_and(|r| r["state"] == "ready")
    });
    assert!(
        !notify.exists(),
        "the notify socket goes once the server is ready"
    );
    let server = run.proc("broker");
    run.pinned.signal(sys::SIGTERM);
    server.wait_gone("the server after SIGTERM");
}

#[test]
fn an_oversized_notify_message_is_ignored_whole() {
    let state = State::new();
    let mut run = declared_broker(&state, "h", &["--huge"]);
    // A 1 MiB datagram is more than the kernel takes; 64 KiB arrives cut.
    let big = run.expect_line("huge 1048576 ");
    let cut = run.expect_line("huge 65536 ");
    assert!(cut.ends_with("sent"), "{cut} ({big})");
    run.expect_stderr("a notify message larger than 4096 bytes: ignored");
    assert_eq!(state.served("h")["record"]["state"], "starting");
    say_go(&mut run);
    eventually("the record says ready", || {
        state.record_now("h").is_some_and(|r| r["state"] == "ready")
    });
    let server = run.proc("broker");
    run.pinned.signal(sys::SIGTERM);
    server.wait_gone("the server after SIGTERM");
}

/// `up --socket PATH` fails before anything starts: (exit code, JSON).
fn up_refused(broker: &Broker, socket: &Path) -> (i32, Value) {
    let (code, v, _) = broker.up(
        &["--owner", "none", "--socket", socket.to_str().unwrap()],
        &[socket.to_str().unwrap()],
    );
    assert_eq!(
        status_json(&broker.state.dir)["supervisors"],
        serde_json::json!([])
    );
    (code, v)
}

#[test]
fn what_stands_at_the_socket_path_and_is_not_our_socket_fails_up_with_nothing_started() {
    let broker = Broker::new();
    let tmp = broker.state.tmp().path();
    let dir = tmp.join("a-dir");
    std::fs::create_dir(&dir).unwrap();
    let fifo = tmp.join("a-fifo");
    mkfifo(&fifo);
    let file = tmp.join("a-file");
    std::fs::write(&file, "x").unwrap();
    // A symlink to a live socket of ours: never followed.
    let mut theirs = Launch::program(fixture_bin())
        .args(["broker", broker.socket()])
        .spawn();
    theirs.expect_line("listening ");
    let link = tmp.join("a-link");
    std::os::unix::fs::symlink(&broker.socket, &link).unwrap();
    for (path, what) in [
        (&dir, "a directory"),
        (&fifo, "a FIFO"),
        (&file, "a regular file"),
        (&link, "a symlink"),
    ] {
        let (code, v) = up_refused(&broker, path);
        assert_eq!(code, 125, "{what}: {v}");
        assert_eq!(v["kind"], "in_the_way", "{what}: {v}");
        let error = v["error"].as_str().unwrap();
        assert!(error.contains(what), "{error}");
    }
    assert!(
        dir.is_dir() && file.is_file() && fifo.exists(),
        "nothing was removed"
    );
    theirs
        .pinned
        .assert_survives(Duration::from_millis(100), "the broker behind the symlink");
}

#[test]
fn a_socket_path_too_long_for_an_address_is_a_usage_error() {
    let broker = Broker::new();
    let long = format!("/tmp/{}/b.sock", "d".repeat(sys::MAX_SOCKET_PATH));
    let (code, out, err) = broker.state.cmd("up", &["--socket", &long, "--", "true"]);
    assert_eq!(code, 2, "{out} {err}");
    assert!(
        err.contains("longer than a socket address takes here"),
        "{err}"
    );
    assert_eq!(
        status_json(&broker.state.dir)["supervisors"],
        serde_json::json!([])
    );
}
