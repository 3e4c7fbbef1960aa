//! `ocwrap up` (docs/DESIGN.md, "`up`"): started, attached, external, races, detachment from the
//! caller, and failures that leave nothing behind.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

#[cfg(unix)]
use crate::support::ocwrap_bin;
use crate::support::{
    Launch, Proc, Running, TempDir, fixture_bin, free_port, kill_and_reap, ocwrap_once, owner,
    status_json,
};
use ocwrap::process::Pid;
use ocwrap::state::StateDir;
use ocwrap::state::lock;

struct Up {
    _tmp: TempDir,
    dir: PathBuf,
    port: u16,
}

impl Up {
    fn new() -> Up {
        let tmp = TempDir::new();
        let dir = tmp.path().join("state");
        Up {
            _tmp: tmp,
            dir,
            port: free_port(),
        }
    }

    fn dir(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// `ocwrap up --json --state-dir D --port P EXTRA… -- fixture tree --listen P`
    fn launch(&self, extra: &[&str], fixture: &[&str]) -> Launch {
        let port = self.port.to_string();
        Launch::ocwrap()
            .args(["up", "--json", "--state-dir", self.dir(), "--port", &port])
            .args(extra)
            .arg("--")
            .arg(fixture_bin())
            .args(fixture)
    }

    fn serve(&self) -> Vec<String> {
        vec![
            "tree".into(),
            "--listen".into(),
            self.port.to_string(),
            "--children".into(),
            "1".into(),
            "--escape".into(),
        ]
    }

    fn up(&self, owner: &Running) -> Value {
        let serve = self.serve();
        let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
        let mut run = self
            .launch(
                &[
                    "--owner-pid",
                    &owner.pinned.pid.to_string(),
                    "--health",
                    "/health",
                ],
                &serve,
            )
            .spawn();
        let code = run.exit_code();
        let out = run.seen.join("\n");
        assert_eq!(code, 0, "up failed: {out} {}", run.stderr());
        one_object(&out)
    }

    fn lock_held(&self) -> bool {
        lock::is_held(
            &StateDir::open(Some(&self.dir))
                .unwrap()
                .lock_path(ocwrap::identity::Name::of_port(self.port)),
        )
    }

    fn port_free(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
    }

    /// The processes of the server's tree, from the fixture's lines in the log.
    fn tree_from_log(&self) -> Vec<Proc> {
        let log = std::fs::read_to_string(self.dir.join(format!("port-{}.log", self.port)))
            .unwrap_or_default();
        log.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let label = w.next()?;
                ["server", "child", "escapee"]
                    .contains(&label)
                    .then(|| w.next()?.parse::<Pid>().ok())
                    .flatten()
            })
            .map(Proc::pin_announced)
            .collect()
    }
}

/// Exactly one JSON object, alone on stdout.
fn one_object(out: &str) -> Value {
    assert_eq!(out.lines().count(), 1, "one line of JSON: {out:?}");
    let v: Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
    assert!(v.is_object(), "{out}");
    v
}

fn owner_pids(v: &Value) -> Vec<i64> {
    v["owners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["pid"].as_i64().unwrap())
        .collect()
}

const KEYS: [&str; 9] = [
    "status",
    "name",
    "url",
    "port",
    "pid",
    "pgid",
    "supervisor_pid",
    "owners",
    "log",
];

#[test]
fn started_then_attached_report_one_json_object_and_share_the_server() {
    let up = Up::new();
    let (mut a, mut b) = (owner(), owner());
    let started = up.up(&a);
    for key in KEYS {
        assert!(started.get(key).is_some(), "{key} in {started}");
    }
    assert_eq!(started["status"], "started");
    assert_eq!(started["name"], format!("port-{}", up.port));
    assert_eq!(started["url"], format!("http://127.0.0.1:{}", up.port));
    assert_eq!(started["port"], up.port);
    assert_eq!(started["pid"], started["pgid"]);
    assert_eq!(owner_pids(&started), [i64::from(a.pinned.pid.get())]);
    assert!(
        started["log"]
            .as_str()
            .unwrap()
            .ends_with(&format!("port-{}.log", up.port))
    );

    let attached = up.up(&b);
    assert_eq!(attached["status"], "attached");
    assert_eq!(attached["pid"], started["pid"]);
    assert_eq!(attached["supervisor_pid"], started["supervisor_pid"]);
    assert_eq!(
        owner_pids(&attached),
        [i64::from(a.pinned.pid.get()), i64::from(b.pinned.pid.get())]
    );

    // 3. Shared: A's death leaves it running, B's death takes the whole tree.
    let supervisor =
        Proc::pin(Pid::new(started["supervisor_pid"].as_i64().unwrap() as i32).unwrap());
    let tree = up.tree_from_log();
    assert_eq!(tree.len(), 3, "server, child, escapee");
    kill_and_reap(&mut a);
    tree[0].assert_survives(
        Duration::from_millis(500),
        "the server while B still owns it",
    );
    kill_and_reap(&mut b);
    for p in &tree {
        p.wait_gone("the tree after both owners died");
    }
    supervisor.wait_gone("the supervisor");
    assert!(up.port_free(), "the port is free");
    assert!(!up.lock_held());
}

#[test]
fn a_server_started_by_hand_is_external_and_never_signalled() {
    let up = Up::new();
    let port = up.port.to_string();
    let mut theirs = Launch::program(fixture_bin())
        .args(["tree", "--listen", &port])
        .spawn();
    theirs.expect_line("ready");
    let mut session = owner();
    let external = up.up(&session);
    assert_eq!(external["status"], "external");
    assert_eq!(external["port"], up.port);
    assert_eq!(external["url"], format!("http://127.0.0.1:{}", up.port));
    for key in ["name", "pid", "pgid", "supervisor_pid", "log"] {
        assert_eq!(external[key], Value::Null, "{key}");
    }
    assert_eq!(external["owners"], serde_json::json!([]));
    assert_eq!(
        status_json(&up.dir)["supervisors"],
        serde_json::json!([]),
        "nothing recorded as ours"
    );
    for command in [
        &["release", "--port", &port][..],
        &["stop", "--all", "--wait"],
        &["stop", "--port", &port],
        &["gc"],
    ] {
        ocwrap_once(&[command, &["--state-dir", up.dir()]].concat());
    }
    kill_and_reap(&mut session);
    theirs
        .pinned
        .assert_survives(Duration::from_millis(500), "the server started by hand");
}

#[test]
fn sixteen_concurrent_ups_start_exactly_one_server() {
    let up = Up::new();
    let owners: Vec<Running> = (0..16).map(|_| owner()).collect();
    let serve = up.serve();
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    let mut runs: Vec<Running> = owners
        .iter()
        .map(|o| {
            up.launch(
                &[
                    "--owner-pid",
                    &o.pinned.pid.to_string(),
                    "--health",
                    "/health",
                ],
                &serve,
            )
            .spawn()
        })
        .collect();
    let answers: Vec<Value> = runs
        .iter_mut()
        .map(|r| {
            assert_eq!(r.exit_code(), 0, "{}", r.stderr());
            one_object(&r.seen.join("\n"))
        })
        .collect();
    let started = answers.iter().filter(|a| a["status"] == "started").count();
    let attached = answers.iter().filter(|a| a["status"] == "attached").count();
    assert_eq!((started, attached), (1, 15), "{answers:?}");
    let pids: std::collections::BTreeSet<String> =
        answers.iter().map(|a| a["pid"].to_string()).collect();
    assert_eq!(pids.len(), 1, "one server PID in all answers: {pids:?}");
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(up.dir.join(format!("port-{}.json", up.port))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        owner_pids(&record).len(),
        16,
        "sixteen owners in the record"
    );
    let tree = up.tree_from_log();
    assert_eq!(tree.len(), 3, "server, child, escapee");
    drop(owners);
    for p in &tree {
        p.wait_gone("the shared tree after all sixteen owners died");
    }
}

#[cfg(unix)] // Unix only: process groups
#[test]
fn killing_the_callers_process_group_does_not_touch_the_server() {
    let up = Up::new();
    let mut session = owner();
    let port = up.port.to_string();
    let mut caller = Launch::program(fixture_bin())
        .own_group()
        .args([
            "spawn",
            ocwrap_bin(),
            "up",
            "--json",
            "--state-dir",
            up.dir(),
            "--port",
            &port,
        ])
        .args([
            "--owner-pid",
            &session.pinned.pid.to_string(),
            "--",
            fixture_bin(),
            "tree",
            "--listen",
            &port,
        ])
        .spawn();
    let answer = caller.expect_line("{");
    assert_eq!(one_object(&answer)["status"], "started");
    // What an agent's command timeout does: SIGKILL to the caller's whole group.
    let group = caller.pinned.pid.get();
    ocwrap::sys::signal(
        ocwrap::process::Target::ProcessGroup(Pid::new(group).unwrap()),
        ocwrap::sys::SIGKILL,
    )
    .unwrap();
    caller.wait_exit();
    let tree = up.tree_from_log();
    tree[0].assert_survives(Duration::from_secs(1), "the server while its owner lives");
    assert!(up.lock_held(), "its supervisor is alive");
    kill_and_reap(&mut session);
    for p in &tree {
        p.wait_gone("the tree once its owner is gone");
    }
    assert!(up.port_free());
}

fn assert_fails_cleanly(up: &Up, fixture: &[&str], extra: &[&str], cause: &str) {
    let mut session = owner();
    let timeout = 3;
    let began = Instant::now();
    let t = format!("{timeout}s");
    let mut args = vec![
        "--owner-pid".to_string(),
        session.pinned.pid.to_string(),
        "--ready-timeout".into(),
        t,
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut run = up.launch(&args, fixture).spawn();
    let code = run.exit_code();
    let took = began.elapsed();
    let out = run.seen.join("\n");
    assert_eq!(code, 1, "{out} {}", run.stderr());
    let err = one_object(&out);
    assert_eq!(err["status"], "error");
    assert!(
        err["error"].as_str().unwrap().contains(cause),
        "{cause:?} in {err}"
    );
    assert!(
        err.get("exit_status").is_some() && err.get("log_tail").is_some(),
        "{err}"
    );
    assert!(
        took < Duration::from_secs(timeout + 1),
        "took {took:?}, more than --ready-timeout + 1 s"
    );
    let tree = up.tree_from_log();
    assert!(!tree.is_empty(), "the log names the server's tree");
    for p in tree {
        assert!(!p.is_running(), "pid {} left running", p.pid);
    }
    assert!(!up.lock_held(), "no lock held");
    assert_eq!(status_json(&up.dir)["supervisors"], serde_json::json!([]));
    kill_and_reap(&mut session);
}

#[test]
fn a_command_that_exits_at_once_fails_with_its_status() {
    let up = Up::new();
    assert_fails_cleanly(
        &up,
        &["tree", "--exit", "3"],
        &[],
        "exited before it was ready",
    );
    let missing = Launch::ocwrap()
        .args([
            "up",
            "--json",
            "--state-dir",
            up.dir(),
            "--port",
            &up.port.to_string(),
            "--",
            "/nonexistent/server",
        ])
        .spawn();
    let mut missing = missing;
    assert_eq!(missing.exit_code(), 1);
    let err = one_object(&missing.seen.join("\n"));
    assert_eq!(err["exit_status"], 127);
    assert!(
        err["log_tail"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/server"),
        "{err}"
    );
}

#[test]
fn a_port_nobody_listens_on_fails_within_the_ready_timeout() {
    let up = Up::new();
    assert_fails_cleanly(
        &up,
        &["tree", "--children", "1", "--escape", "--ignore-term"],
        &[],
        "not ready within",
    );
}

#[test]
fn a_server_that_accepts_but_never_answers_fails_within_the_ready_timeout() {
    let up = Up::new();
    let port = up.port.to_string();
    assert_fails_cleanly(
        &up,
        &["tree", "--listen", &port, "--mute", "--children", "1"],
        &["--health", "/health"],
        "not ready within",
    );
}

/// The daemon's PID, from its `daemon <pid>` line in the log.
fn daemon_in_log(up: &Up) -> Option<Pid> {
    let log = std::fs::read_to_string(up.dir.join(format!("port-{}.log", up.port))).ok()?;
    log.lines()
        .find_map(|l| l.strip_prefix("daemon "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

#[test]
fn a_server_that_daemonizes_is_followed_not_torn_down() {
    let up = Up::new();
    let mut session = owner();
    let port = up.port.to_string();
    let mut run = up
        .launch(
            &["--owner-pid", &session.pinned.pid.to_string()],
            &["tree", "--listen", &port, "--daemonize"],
        )
        .spawn();
    assert_eq!(run.exit_code(), 0, "{:?} {}", run.seen, run.stderr());
    let answer = one_object(&run.seen.join("\n"));
    assert_eq!(answer["status"], "started", "{answer}");
    // It exits once its daemon listens: it may be gone already.
    let supervisor =
        Proc::pin(Pid::new(answer["supervisor_pid"].as_i64().unwrap() as i32).unwrap());
    let leader = Proc::pin_announced(Pid::new(answer["pid"].as_i64().unwrap() as i32).unwrap());
    leader.wait_gone("the server's leader, which exits 0 once its daemon listens");
    let daemon = Proc::pin(daemon_in_log(&up).expect("the daemon named itself in the log"));
    let dir = up.dir.clone();
    let record = || status_json(&dir)["supervisors"][0]["record"].clone();
    crate::support::eventually("the record says the server daemonized", || {
        record()["daemonized"] == true
    });
    assert!(daemon.is_running(), "the daemon is followed, not torn down");
    assert!(!up.port_free(), "the daemon still serves the port");
    assert!(up.lock_held(), "its supervisor holds the name");
    kill_and_reap(&mut session);
    daemon.wait_gone("the daemon, once its only owner is gone");
    supervisor.wait_gone("the supervisor, once its tree is gone");
    assert!(!up.lock_held(), "the supervisor exited holding the name");
}

#[test]
fn up_needs_a_port_a_socket_or_a_name() {
    let (code, _, err) = ocwrap_once(&["up", "--", fixture_bin(), "tree", "--exit", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--port, --socket or --name"), "{err}");
}
