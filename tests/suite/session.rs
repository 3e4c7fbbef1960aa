//! The session owner and `ocwrap hook` (docs/DESIGN.md, "The session owner" and
//! "`ocwrap hook`"): a stand-in Claude Code process runs ocwrap the way Claude Code
//! runs hooks and tools (each command under `sh -c`), and the tests check which
//! process became the owner, how it was found, and what happened to the server
//! when that process died, ended its session, or ran `/clear`. Also `--cwd` and
//! the error kinds of `--json` output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    Launch, Proc, Running, TempDir, fixture_bin, free_port, kill_and_reap, ocwrap_bin, ocwrap_once,
};
use ocwrap::process::Pid;
use ocwrap::state::StateDir;
use ocwrap::state::lock;

/// Claude Code gives SessionEnd hooks this long.
const SESSION_END_BUDGET: Duration = Duration::from_millis(1500);

/// Runs each line it reads as `sh -c LINE` (stdout and stderr to files), then
/// prints `done N CODE`: Claude Code running a hook or a Bash tool command.
const FAKE_CLAUDE: &str = r#"n=0
while IFS= read -r line; do
  n=$((n+1))
  sh -c "$line" >"$OUT/out.$n" 2>"$OUT/err.$n" </dev/null
  echo "done $n $?"
done"#;

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A stand-in session process: `sh` whose argv[0] is `argv0` (the real CLI's
/// process title is `claude`), with its own Claude config dir.
struct Session {
    run: Running,
    stdin: ChildStdin,
    out: TempDir,
    n: usize,
}

impl Session {
    fn start(argv0: &str, config: &Path) -> Session {
        let out = TempDir::new();
        let mut run = Launch::program("sh")
            .arg0(argv0)
            .args(["-c", FAKE_CLAUDE])
            .env("OUT", out.path())
            .env("CLAUDE_CONFIG_DIR", config)
            .env_remove("CLAUDE_CODE_SESSION_ID")
            .stdin(Stdio::piped())
            .spawn();
        let stdin = run.child.stdin.take().expect("piped stdin");
        Session {
            run,
            stdin,
            out,
            n: 0,
        }
    }

    fn pid(&self) -> Pid {
        self.run.pinned.pid
    }

    /// Runs `line` under `sh -c` as a child of the session: (code, stdout, stderr).
    fn sh(&mut self, line: &str) -> (i32, String, String) {
        self.n += 1;
        writeln!(self.stdin, "{line}").expect("write to the session");
        let done = self.run.expect_line(&format!("done {} ", self.n));
        let code = done.rsplit(' ').next().unwrap().parse().unwrap();
        let read = |name: String| std::fs::read_to_string(self.out.path().join(name)).unwrap();
        (
            code,
            read(format!("out.{}", self.n)),
            read(format!("err.{}", self.n)),
        )
    }

    /// Runs `ocwrap ARGS…` as a child of the session (`sh -c 'exec ocwrap …'`).
    fn ocwrap(&mut self, args: &[&str]) -> (i32, String, String) {
        let line: Vec<String> = std::iter::once(ocwrap_bin())
            .chain(args.iter().copied())
            .map(quote)
            .collect();
        self.sh(&format!("exec {}", line.join(" ")))
    }

    /// Runs `ocwrap hook ARGS…` with `input` on stdin, as Claude Code does; also
    /// how long it took.
    fn hook(&mut self, input: &str, args: &[&str]) -> (i32, String, String, Duration) {
        let command: Vec<String> = std::iter::once(ocwrap_bin())
            .chain(std::iter::once("hook"))
            .chain(args.iter().copied())
            .map(quote)
            .collect();
        let at = Instant::now();
        let (code, out, err) = self.sh(&format!(
            "printf '%s' {} | {}",
            quote(input),
            command.join(" ")
        ));
        (code, out, err, at.elapsed())
    }
}

/// A state dir, a port, and a Claude config dir for one test.
struct World {
    tmp: TempDir,
    port: u16,
}

impl World {
    fn new() -> World {
        let tmp = TempDir::new();
        std::fs::create_dir_all(tmp.path().join("claude/sessions")).unwrap();
        World {
            tmp,
            port: free_port(),
        }
    }

    fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    fn state_arg(&self) -> String {
        self.state().to_str().unwrap().to_string()
    }

    fn config(&self) -> PathBuf {
        self.tmp.path().join("claude")
    }

    /// Writes Claude Code's session record for `pid`, with `start` as procStart.
    fn record_session(&self, pid: Pid, session_id: &str, start: u64) {
        let text = format!(
            r#"{{"pid":{pid},"sessionId":"{session_id}","cwd":"/","startedAt":1,"procStart":"{start}","kind":"interactive"}}"#
        );
        std::fs::write(self.config().join(format!("sessions/{pid}.json")), text).unwrap();
    }

    /// `up --json --state-dir D --port P EXTRA… -- fixture tree --listen P`
    fn up_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "up".into(),
            "--json".into(),
            "--state-dir".into(),
            self.state_arg(),
            "--port".into(),
            self.port.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(self.server());
        args
    }

    fn server(&self) -> Vec<String> {
        vec![
            "--".into(),
            fixture_bin().into(),
            "tree".into(),
            "--listen".into(),
            self.port.to_string(),
            "--children".into(),
            "1".into(),
        ]
    }

    fn hook_args(&self) -> Vec<String> {
        let mut args = vec![
            "--state-dir".into(),
            self.state_arg(),
            "--port".into(),
            self.port.to_string(),
        ];
        args.extend(self.server());
        args
    }

    /// `up ARGS…` run from this test, not from a session, with `session_id` as
    /// `CLAUDE_CODE_SESSION_ID`: its JSON answer.
    fn up_from_here(&self, args: &[String], session_id: &str) -> Value {
        let mut up = Launch::ocwrap()
            .args(args)
            .env("CLAUDE_CONFIG_DIR", self.config())
            .env("CLAUDE_CODE_SESSION_ID", session_id)
            .spawn();
        assert_eq!(up.exit_code(), 0, "{}", up.stderr());
        json(&up.seen.join("\n"))
    }

    /// `stop --wait` of the port's supervisor, which must have been running.
    fn stop(&self) {
        let port = self.port.to_string();
        let (code, out, err) = ocwrap_once(&[
            "stop",
            "--json",
            "--wait",
            "--state-dir",
            &self.state_arg(),
            "--port",
            &port,
        ]);
        assert_eq!(code, 0, "{out} {err}");
        assert_eq!(json(&out)["status"], "stopped", "{out}");
        assert!(!self.lock_held(), "the supervisor still holds the name");
    }

    fn lock_held(&self) -> bool {
        let Ok(state) = StateDir::open(Some(&self.state())) else {
            return false;
        };
        lock::is_held(&state.lock_path(ocwrap::identity::Name::of_port(self.port)))
    }

    fn record(&self) -> Value {
        let path = self.state().join(format!("port-{}.json", self.port));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn owner_pids(&self) -> Vec<i64> {
        self.record()["owners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["pid"].as_i64().unwrap())
            .collect()
    }

    /// The server and the supervisor of the record, pinned.
    fn tree(&self) -> (Proc, Proc) {
        let r = self.record();
        let pin = |v: &Value| Proc::pin(Pid::new(v.as_i64().unwrap() as i32).unwrap());
        (pin(&r["server"]["pid"]), pin(&r["supervisor"]["pid"]))
    }

    /// Nothing was started: no supervisor holds the name, no record, port free.
    fn assert_nothing_started(&self, what: &str) {
        assert!(!self.lock_held(), "{what}: a supervisor holds the name");
        assert!(
            !self
                .state()
                .join(format!("port-{}.json", self.port))
                .exists(),
            "{what}: a record was written"
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(),
            "{what}: the port answers"
        );
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn json(out: &str) -> Value {
    assert_eq!(out.lines().count(), 1, "one line of JSON: {out:?}");
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

fn lease(v: &Value) -> (i64, String) {
    let leases = v["leases"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(leases.len(), 1, "one lease: {v}");
    (
        leases[0]["pid"].as_i64().unwrap(),
        leases[0]["found_by"].as_str().unwrap().to_string(),
    )
}

fn start_of(pid: Pid) -> u64 {
    ocwrap::sys::proc_info(pid).unwrap().start.0
}

#[cfg_attr(
    windows,
    ignore = "not ported to Windows: the session is a Unix shell named claude by its argv[0]; there it would be a copy of the fixture named claude.exe"
)]
#[test]
fn the_session_is_the_ancestor_named_claude_and_its_death_ends_the_server() {
    let world = World::new();
    let mut session = Session::start("claude", &world.config());
    let args = world.up_args(&["--owner", "session", "-v"]);
    let (code, out, err) = session.ocwrap(&strs(&args));
    assert_eq!(code, 0, "{out} {err}");
    let up = json(&out);
    assert_eq!(up["status"], "started");
    assert_eq!(
        lease(&up),
        (i64::from(session.pid().get()), "session_name".into())
    );
    assert!(
        err.contains(&format!("owner {}: the Claude Code session", session.pid())),
        "-v says which rule found the owner: {err}"
    );
    assert_eq!(world.owner_pids(), [i64::from(session.pid().get())]);
    let (server, supervisor) = world.tree();
    kill_and_reap(&mut session.run);
    server.wait_gone("the server after its session was killed");
    supervisor.wait_gone("the supervisor");
}

#[cfg_attr(
    windows,
    ignore = "not ported to Windows: the session is a Unix shell named claude by its argv[0]; there it would be a copy of the fixture named claude.exe"
)]
#[test]
fn a_session_record_is_taken_only_with_the_start_time_of_its_process() {
    let world = World::new();
    // Not named claude: only the record can say it is the session.
    let mut session = Session::start("node", &world.config());
    world.record_session(session.pid(), "s-record", start_of(session.pid()) + 1);
    let args = world.up_args(&["--owner", "session"]);
    let (code, out, err) = session.ocwrap(&strs(&args));
    assert_eq!(code, 0, "{out} {err}");
    // A record whose start time is not the process's names another process (its
    // PID reused): the rule falls back to the caller's parent, here the session
    // too, but found as the parent.
    let up = json(&out);
    assert_eq!(lease(&up).1, "parent", "{up}");
    world.stop();

    world.record_session(session.pid(), "s-record", start_of(session.pid()));
    let (code, out, err) = session.ocwrap(&strs(&args));
    assert_eq!(code, 0, "{out} {err}");
    let up = json(&out);
    assert_eq!(up["status"], "started", "{up}");
    assert_eq!(
        lease(&up),
        (i64::from(session.pid().get()), "session_record".into())
    );
    let (server, _) = world.tree();
    kill_and_reap(&mut session.run);
    server.wait_gone("the server after its session was killed");
}

#[cfg_attr(
    windows,
    ignore = "not ported to Windows: the session is a Unix shell named claude by its argv[0]; there it would be a copy of the fixture named claude.exe"
)]
#[test]
fn a_caller_cut_off_from_its_session_finds_it_by_session_id() {
    let world = World::new();
    let mut session = Session::start("claude", &world.config());
    world.record_session(session.pid(), "s-detached", start_of(session.pid()));
    // Run from this test, not from the session: no ancestor is the session.
    let args = world.up_args(&["--owner", "session"]);
    // Another session's ID finds nothing: the caller's parent (this test).
    let other = world.up_from_here(&args, "s-other");
    assert_eq!(lease(&other).1, "parent", "a session ID no record carries");
    world.stop();
    let answer = world.up_from_here(&args, "s-detached");
    assert_eq!(
        lease(&answer),
        (i64::from(session.pid().get()), "session_id".into())
    );
    let (server, _) = world.tree();
    kill_and_reap(&mut session.run);
    server.wait_gone("the server after its session was killed");
    // The record of a session that is gone names no one.
    let late = world.up_from_here(&args, "s-detached");
    assert_eq!(lease(&late).1, "parent", "a gone session's record");
    world.stop();
}

#[cfg_attr(
    windows,
    ignore = "not ported to Windows: the session is a Unix shell named claude by its argv[0]; there it would be a copy of the fixture named claude.exe"
)]
#[test]
fn outside_any_session_the_owner_is_the_callers_parent() {
    let world = World::new();
    let mut shell = Session::start("sh", &world.config());
    let args = world.up_args(&["--owner", "session"]);
    let (code, out, err) = shell.ocwrap(&strs(&args));
    assert_eq!(code, 0, "no error outside a session: {out} {err}");
    assert_eq!(
        lease(&json(&out)),
        (i64::from(shell.pid().get()), "parent".into())
    );
    let (server, _) = world.tree();
    kill_and_reap(&mut shell.run);
    server.wait_gone("the server after its caller's parent was killed");
}

#[cfg_attr(
    windows,
    ignore = "not ported to Windows: the session is a Unix shell named claude by its argv[0]; there it would be a copy of the fixture named claude.exe"
)]
#[test]
fn release_finds_the_session_as_up_did_and_drops_only_its_lease() {
    let world = World::new();
    let mut a = Session::start("claude", &world.config());
    let mut b = Session::start("claude", &world.config());
    let args = world.up_args(&["--owner", "session"]);
    assert_eq!(a.ocwrap(&strs(&args)).0, 0);
    let (code, out, _) = b.ocwrap(&strs(&args));
    assert_eq!(code, 0);
    assert_eq!(json(&out)["status"], "attached");
    let port = world.port.to_string();
    let release = [
        "release",
        "--json",
        "--state-dir",
        &world.state_arg(),
        "--port",
        &port,
        "--owner",
        "session",
    ];
    let (code, out, err) = b.ocwrap(&release);
    assert_eq!(code, 0, "{out} {err}");
    let released = json(&out);
    assert_eq!(released["released"], b.pid().get());
    assert_eq!(released["found_by"], "session_name");
    assert_eq!(world.owner_pids(), [i64::from(a.pid().get())]);
    let (server, _) = world.tree();
    server.assert_survives(Duration::from_millis(300), "the server A still holds");
    let (code, out, _) = a.ocwrap(&release);
    assert_eq!(code, 0, "{out}");
    server.wait_gone("the server once both sessions released");
    // Two owner options are refused: release drops one lease.
    let (code, out, _) = a.ocwrap(&[
        "release",
        "--json",
        "--port",
        &port,
        "--owner-pid",
        "1",
        "--owner",
        "session",
    ]);
    assert_eq!(code, 2);
    assert_eq!(json(&out)["kind"], "usage");
}

#[cfg_attr(
    windows,
    ignore = "not ported to Windows: the session is a Unix shell named claude by its argv[0]; there it would be a copy of the fixture named claude.exe"
)]
#[test]
fn hook_start_clear_and_end_follow_the_session() {
    let world = World::new();
    let mut session = Session::start("claude", &world.config());
    let args = world.hook_args();
    let start =
        r#"{"session_id":"s1","hook_event_name":"SessionStart","source":"startup","cwd":"/"}"#;
    let (code, out, err, _) = session.hook(start, &strs(&args));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out, "",
        "a SessionStart hook's stdout goes into the session's context"
    );
    assert_eq!(world.owner_pids(), [i64::from(session.pid().get())]);
    let (server, supervisor) = world.tree();

    // /clear: SessionEnd, then SessionStart, in the same process.
    let clear = r#"{"session_id":"s1","hook_event_name":"SessionEnd","reason":"clear"}"#;
    let (code, out, err, took) = session.hook(clear, &strs(&args));
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(took < SESSION_END_BUDGET, "SessionEnd took {took:?}");
    let again = r#"{"session_id":"s2","hook_event_name":"SessionStart","source":"clear"}"#;
    assert_eq!(session.hook(again, &strs(&args)).0, 0);
    assert_eq!(
        world.owner_pids(),
        [i64::from(session.pid().get())],
        "no second lease"
    );
    server.assert_survives(Duration::from_millis(300), "the server after /clear");

    let end = r#"{"session_id":"s2","hook_event_name":"SessionEnd","reason":"prompt_input_exit"}"#;
    let (code, out, err, took) = session.hook(end, &strs(&args));
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(took < SESSION_END_BUDGET, "SessionEnd took {took:?}");
    server.wait_gone("the server after SessionEnd");
    supervisor.wait_gone("the supervisor after SessionEnd");
    // A second SessionEnd finds nothing to release: still success.
    let (code, _, err, took) = session.hook(end, &strs(&args));
    assert_eq!(code, 0, "{err}");
    assert!(took < SESSION_END_BUDGET, "SessionEnd took {took:?}");
    // With --json it says so, as release does, and still succeeds.
    let mut with_json = vec!["--json".to_string()];
    with_json.extend(args.iter().cloned());
    let (code, out, err, _) = session.hook(end, &strs(&with_json));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["kind"], "not_running", "{out}");
}

#[cfg_attr(
    windows,
    ignore = "not ported to Windows: the session is a Unix shell named claude by its argv[0]; there it would be a copy of the fixture named claude.exe"
)]
#[test]
fn hook_refuses_bad_input_quickly_and_starts_nothing() {
    let world = World::new();
    let mut session = Session::start("claude", &world.config());
    let args = world.hook_args();
    let huge = format!(
        r#"{{"hook_event_name":"SessionStart","pad":"{}"}}"#,
        "x".repeat(1_100_000)
    );
    for (what, input) in [
        ("empty", ""),
        ("not JSON", "SessionStart"),
        ("not an object", "[1,2]"),
        ("no event", r#"{"session_id":"s"}"#),
        (
            "unknown event",
            r#"{"hook_event_name":"PreToolUse","session_id":"s"}"#,
        ),
        ("cut short", r#"{"hook_event_name":"SessionStart""#),
    ] {
        let (code, out, err, took) = session.hook(input, &strs(&args));
        assert_eq!(code, 2, "{what}: {out} {err}");
        assert!(
            err.starts_with("ocwrap: "),
            "{what}: a clear message: {err:?}"
        );
        assert!(took < SESSION_END_BUDGET, "{what}: took {took:?}");
        world.assert_nothing_started(what);
    }
    // Too big to be a hook's input; the huge argument goes through a file.
    let file = world.tmp.file("huge.json", &huge);
    let command: Vec<String> = [ocwrap_bin(), "hook"]
        .into_iter()
        .chain(strs(&args))
        .map(quote)
        .collect();
    let at = Instant::now();
    let (code, _, err) = session.sh(&format!(
        "{} < {}",
        command.join(" "),
        quote(file.to_str().unwrap())
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("KiB"), "{err}");
    assert!(at.elapsed() < SESSION_END_BUDGET);
    world.assert_nothing_started("huge input");

    // A stdin that never ends (this test holds its write end open): the hook
    // gives up after its 1 s wait, inside the budget.
    let at = Instant::now();
    let mut held = Launch::ocwrap()
        .arg("hook")
        .args(&args)
        .stdin(Stdio::piped())
        .spawn();
    let code = held.exit_code();
    let took = at.elapsed();
    // (`exit_code` waits on the pidfd first: stdin stays open until the hook is
    // gone, and a closed stdin would have been answered at once as empty.)
    assert_eq!(code, 2, "{}", held.stderr());
    assert!(held.stderr().contains("did not end"), "{}", held.stderr());
    assert!(
        took >= Duration::from_secs(1) && took < SESSION_END_BUDGET,
        "answered after {took:?}"
    );
    world.assert_nothing_started("stdin held open");
}

#[cfg_attr(
    windows,
    ignore = "not ported to Windows: the session is a Unix shell named claude by its argv[0]; there it would be a copy of the fixture named claude.exe"
)]
#[test]
fn hook_without_a_session_fails_and_starts_nothing() {
    let world = World::new();
    let mut shell = Session::start("sh", &world.config());
    let args = world.hook_args();
    let mut with_json = vec!["--json".to_string()];
    with_json.extend(args.iter().cloned());
    let start = r#"{"session_id":"s1","hook_event_name":"SessionStart","source":"startup"}"#;
    let (code, out, err, _) = shell.hook(start, &strs(&with_json));
    assert_eq!(code, 125, "{out} {err}");
    assert_eq!(json(&out)["kind"], "no_owner_found");
    assert!(err.contains("no Claude Code session"), "{err}");
    world.assert_nothing_started("no session");
    let end = r#"{"session_id":"s1","hook_event_name":"SessionEnd","reason":"logout"}"#;
    let (code, _, err, took) = shell.hook(end, &strs(&args));
    assert_eq!(code, 125, "{err}");
    assert!(took < SESSION_END_BUDGET);
}

#[cfg_attr(
    windows,
    ignore = "not ported to Windows: the session is a Unix shell named claude by its argv[0]; there it would be a copy of the fixture named claude.exe"
)]
#[test]
fn cwd_sets_the_servers_working_directory() {
    let world = World::new();
    let dir = world.tmp.path().join("project");
    std::fs::create_dir(&dir).unwrap();
    let mut session = Session::start("sh", &world.config());
    let args = world.up_args(&["--cwd", dir.to_str().unwrap()]);
    let (code, out, err) = session.ocwrap(&strs(&args));
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(world.record()["cwd"], dir.to_str().unwrap());
    let server = json(&out)["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{server}/cwd")).unwrap(),
        dir
    );
    let (server, supervisor) = world.tree();
    kill_and_reap(&mut session.run);
    server.wait_gone("the server");
    // It holds the name until it exits.
    supervisor.wait_gone("the supervisor");

    for (what, bad) in [
        ("missing", world.tmp.path().join("missing")),
        ("a file", world.tmp.file("plain", "x")),
    ] {
        let args = world.up_args(&["--cwd", bad.to_str().unwrap(), "--owner", "none"]);
        let (code, out, err) = ocwrap_once(&strs(&args));
        assert_eq!(code, 125, "{what}: {out} {err}");
        assert_eq!(json(&out)["kind"], "cwd_unusable", "{what}");
        world.assert_nothing_started(what);
    }
}
