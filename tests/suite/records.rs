//! Records, locks, the control socket, and the commands built on them: `status`,
//! `stop`, `release` and `gc` (docs/DESIGN.md, "Records and locks").

#[cfg(unix)]
use std::os::unix::fs::{MetadataExt, PermissionsExt};
#[cfg(unix)]
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    Junk, Running, State, attach_line, eventually, fixture_bin, free_port, kill_and_reap, owner,
    raw_request, status_json,
};
#[cfg(unix)]
use crate::support::{Launch, Proc, TempDir, assert_state_dir_refused};
use ocwrap::process::Pid;
use ocwrap::sys;

#[cfg(unix)]
const NOBODY: u32 = 65534;

fn owner_pids(record: &Value) -> Vec<i64> {
    record["owners"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o["pid"].as_i64()).collect())
        .unwrap_or_default()
}

const TREE: &[&str] = &["tree", "--children", "1", "--escape"];

// 1. The lock.

#[test]
fn a_second_run_for_a_held_name_exits_125_and_leaves_the_first_alone() {
    let state = State::new();
    let mut first = state.run(&["--name", "x", "--owner", "none"], TREE);
    let procs = first.tree();
    let (_, supervisor) = first.server_and_supervisor();
    state.served("x");
    let mut second = state.run(&["--name", "x", "--owner", "none"], TREE);
    assert_eq!(second.exit_code(), 125);
    let expected = format!(
        "already running (pid {}); use 'ocwrap up' to share it",
        supervisor.pid
    );
    assert!(second.stderr().contains(&expected), "{:?}", second.stderr());
    assert!(
        second.seen.is_empty(),
        "the second started nothing: {:?}",
        second.seen
    );
    for p in &procs {
        assert!(p.is_running(), "the first supervisor's tree is untouched");
    }
    assert!(supervisor.is_running());
    assert_eq!(state.record("x")["supervisor"]["pid"], supervisor.pid.get());
}

// 2. The record.

#[test]
fn the_record_has_every_field_with_true_values() {
    let state = State::new();
    let mut session = owner();
    let port = free_port();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let port_arg = port.to_string();
    let mut run = state.run(
        &[
            "--port",
            &port_arg,
            "--owner-pid",
            &session.pinned.pid.to_string(),
        ],
        &["tree", "--listen", &port_arg, "--children", "1"],
    );
    let (server, supervisor) = run.server_and_supervisor();
    run.expect_line("ready");
    let stem = format!("port-{port}");
    eventually("state ready", || {
        state.has_record(&stem) && state.record(&stem)["state"] == "ready"
    });
    let r = state.record(&stem);
    let start = |pid: Pid| sys::proc_info(pid).expect("running").start.0;
    assert_eq!(r["version"], 1);
    assert_eq!(r["name"], stem.as_str());
    assert_eq!(r["supervisor"]["pid"], supervisor.pid.get());
    assert_eq!(r["supervisor"]["start"], start(supervisor.pid));
    assert_eq!(r["server"]["pid"], server.pid.get());
    assert_eq!(r["server"]["pgid"], server.pid.get());
    assert_eq!(r["server"]["start"], start(server.pid));
    let command: Vec<&str> = r["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        command,
        [
            fixture_bin(),
            "tree",
            "--listen",
            &port_arg,
            "--children",
            "1"
        ]
    );
    assert_eq!(r["cwd"], std::env::current_dir().unwrap().to_str().unwrap());
    assert_eq!(r["port"], port);
    assert_eq!(r["url"], format!("http://127.0.0.1:{port}"));
    assert_eq!(owner_pids(&r), [i64::from(session.pinned.pid.get())]);
    assert_eq!(r["owners"][0]["start"], start(session.pinned.pid));
    let started = ocwrap::time::parse_rfc3339(r["started_at"].as_str().unwrap()).expect("RFC 3339");
    assert!(
        (before - 1..=before + 60).contains(&started),
        "started_at {started} vs now {before}"
    );
    assert_eq!(r["log"], Value::Null);
    #[cfg(unix)]
    {
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state.dir.join(format!("{stem}.json"))), 0o600);
        assert_eq!(mode(&state.dir), 0o700);
    }
    kill_and_reap(&mut session);
    server.wait_gone("server");
    assert_eq!(run.exit_code(), 0);
    assert!(!state.has_record(&stem), "the record is removed at exit");
}

#[cfg(unix)] // Unix only: SIGTERM sent to ocwrap, and its exit code
#[test]
fn an_unnamed_supervisor_writes_a_pid_record() {
    let state = State::new();
    let mut run = state.run(&["--owner", "none"], TREE);
    let (_, supervisor) = run.server_and_supervisor();
    let stem = format!("pid-{}", supervisor.pid);
    state.served(&stem);
    assert_eq!(state.record(&stem)["name"], Value::Null);
    supervisor.signal(sys::SIGTERM);
    assert_eq!(run.exit_code(), 143);
    assert!(!state.has_record(&stem), "record removed");
}

// 3. Unsafe state dirs.

#[cfg(unix)] // Unix only: modes, owners and symlinks of the state dir
fn assert_refused(state_dir: &Path, problem: &str) {
    let before = std::fs::symlink_metadata(state_dir).expect("exists");
    assert_state_dir_refused(state_dir.to_str().unwrap(), problem);
    let after = std::fs::symlink_metadata(state_dir).expect("exists");
    assert_eq!(
        (before.mode(), before.uid()),
        (after.mode(), after.uid()),
        "nothing changed"
    );
    if after.is_dir() {
        assert_eq!(
            std::fs::read_dir(state_dir).unwrap().count(),
            0,
            "nothing written"
        );
    }
}

#[cfg(unix)] // Unix only: modes, owners and symlinks of the state dir
#[test]
fn a_symlinked_state_dir_is_refused() {
    let tmp = TempDir::new();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_refused(&link, "is a symlink");
}

#[cfg(unix)] // Unix only: modes, owners and symlinks of the state dir
#[test]
fn a_world_writable_state_dir_is_refused() {
    let tmp = TempDir::new();
    let dir = tmp.path().join("open");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_refused(&dir, "is group- or world-writable");
}

#[cfg(unix)] // Unix only: modes, owners and symlinks of the state dir
#[test]
fn a_state_dir_of_another_user_is_refused() {
    assert_eq!(
        sys::fixture::effective_uid(),
        0,
        "this test needs root (CI runs as root) to chown"
    );
    let tmp = TempDir::new();
    let dir = tmp.path().join("theirs");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    assert_refused(&dir, "is owned by another user");
}

// 4. Records that are not to be trusted.

#[cfg(unix)] // Unix only: modes, owners and symlinks of the state dir
#[test]
fn corrupt_symlinked_and_foreign_records_are_reported_removed_and_never_followed() {
    let state = State::new();
    // Make the dir through ocwrap itself.
    assert_eq!(state.cmd("status", &[]).0, 0);
    let mut decoy = owner();
    let decoy_start = sys::proc_info(decoy.pinned.pid).unwrap().start.0;
    let target = state.tmp().file("precious", "do not touch\n");
    std::fs::write(state.dir.join("corrupt.json"), "{ not json").unwrap();
    std::os::unix::fs::symlink(&target, state.dir.join("link.json")).unwrap();
    // Names the decoy with another start time (a reused PID)…
    let foreign = |start: u64| {
        serde_json::json!({
            "version": 1, "name": "foreign", "supervisor": {"pid": 999_999, "start": 1},
            "server": {"pid": decoy.pinned.pid.get(), "pgid": decoy.pinned.pid.get(), "start": start},
            "command": ["x"], "cwd": "/", "port": null, "url": null, "owners": [],
            "started_at": "2026-01-01T00:00:00Z", "state": "ready", "log": null
        })
        .to_string()
    };
    std::fs::write(state.dir.join("reused.json"), foreign(decoy_start + 1)).unwrap();
    // …and with its true start time: still not ours (no tree marker).
    std::fs::write(state.dir.join("forged.json"), foreign(decoy_start)).unwrap();

    // gc --dry-run sweeps nothing and reports all four, with nothing to signal.
    let (code, out, err) = state.cmd("gc", &["--dry-run", "--json"]);
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    let planned: Vec<&str> = plan["cleaned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["killed"], serde_json::json!([]), "nothing to signal: {c}");
            c["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(planned, ["corrupt", "forged", "link", "reused"]);
    // Any other command sweeps the two whose supervisor is verifiably dead (PID
    // 999999 does not run), signalling nobody, and reports the two it cannot
    // verify, leaving them to gc.
    let status = status_json(&state.dir);
    let listed: Vec<&str> = status["supervisors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["live"], false, "{e}");
            assert!(e["problem"].is_string(), "reported: {e}");
            e["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(listed, ["corrupt", "link"]);
    for stem in ["reused", "forged"] {
        assert!(!state.has_record(stem), "{stem} swept");
    }
    let (code, text, _) = state.cmd("status", &[]);
    assert_eq!(code, 0);
    assert!(
        text.contains("corrupt") && text.contains("symlink"),
        "{text}"
    );

    let (code, out, err) = state.cmd("gc", &["--json"]);
    assert_eq!(code, 0, "{err}");
    let gc: Value = serde_json::from_str(&out).unwrap();
    for cleaned in gc["cleaned"].as_array().unwrap() {
        assert_eq!(
            cleaned["killed"],
            serde_json::json!([]),
            "nothing signalled: {cleaned}"
        );
    }
    for stem in ["corrupt", "link", "reused", "forged"] {
        assert!(
            std::fs::symlink_metadata(state.dir.join(format!("{stem}.json"))).is_err(),
            "{stem} removed"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "do not touch\n",
        "the symlink was not followed"
    );
    decoy
        .pinned
        .assert_survives(Duration::from_millis(200), "the decoy named by the records");
    kill_and_reap(&mut decoy);
}

// 5. stop.

#[test]
fn stop_wait_returns_after_the_tree_is_gone() {
    let state = State::new();
    let mut run = state.run(
        &["--name", "x", "--owner", "none"],
        &["tree", "--children", "1", "--escape", "--ignore-term"],
    );
    let procs = run.tree();
    state.served("x");
    let (code, out, err) = state.cmd(
        "stop",
        &["--name", "x", "--wait", "--grace-is-not-an-option"],
    );
    assert_eq!(code, 2, "unknown flags are usage errors: {out} {err}");
    let (code, out, err) = state.cmd("stop", &["--name", "x", "--wait", "--json"]);
    assert_eq!(code, 0, "{err}");
    for p in &procs {
        assert!(
            !p.is_running(),
            "pid {} still runs after stop --wait returned",
            p.pid
        );
    }
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["status"], "stopped");
    assert_eq!(json["stopped"][0]["name"], "x");
    assert_eq!(json["stopped"][0]["server_pid"], procs[0].pid.get());
    assert!(!state.has_record("x"));
    assert_eq!(run.exit_code(), 0, "stop is our own rule");
    let (code, _, err) = state.cmd("stop", &["--name", "x"]);
    assert_eq!(code, 1, "stopping what is not running fails");
    assert!(err.contains("not running"), "{err}");
}

#[test]
fn stop_all_stops_every_live_supervisor() {
    let state = State::new();
    let mut a = state.run(&["--name", "a", "--owner", "none"], TREE);
    let mut b = state.run(&["--owner", "none"], TREE);
    let mut procs = a.tree();
    procs.extend(b.tree());
    state.served("a");
    state.served(&format!("pid-{}", b.server_and_supervisor().1.pid));
    let (code, out, err) = state.cmd("stop", &["--all", "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("stopped ")).count(),
        2,
        "{out}"
    );
    for p in &procs {
        assert!(!p.is_running(), "pid {} survived stop --all --wait", p.pid);
    }
    assert_eq!(a.exit_code(), 0);
    assert_eq!(b.exit_code(), 0);
    assert_eq!(
        status_json(&state.dir)["supervisors"],
        serde_json::json!([])
    );
}

// 6. release.

#[test]
fn release_drops_one_lease_then_the_last_tears_down_after_linger() {
    let state = State::new();
    let (mut a, mut b) = (owner(), owner());
    let (pa, pb) = (a.pinned.pid.to_string(), b.pinned.pid.to_string());
    let mut run = state.run(
        &[
            "--name",
            "x",
            "--owner-pid",
            &pa,
            "--owner-pid",
            &pb,
            "--linger",
            "3s",
        ],
        TREE,
    );
    let procs = run.tree();
    state.served("x");
    let (code, out, err) = state.cmd("release", &["--name", "x", "--owner-pid", &pa, "--json"]);
    assert_eq!(code, 0, "{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["status"], "released");
    assert_eq!(owner_pids(&json), [i64::from(b.pinned.pid.get())]);
    assert_eq!(
        owner_pids(&state.record("x")),
        [i64::from(b.pinned.pid.get())]
    );
    for p in &procs {
        assert!(p.is_running(), "still owned by B: pid {} must run", p.pid);
    }
    let began = Instant::now();
    let (code, _, err) = state.cmd("release", &["--name", "x", "--owner-pid", &pb]);
    assert_eq!(code, 0, "{err}");
    assert!(
        procs[0].is_running(),
        "release returns without waiting for the teardown (linger 3s)"
    );
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "release took {:?}",
        began.elapsed()
    );
    for p in &procs {
        p.wait_gone("the tree after the last release and --linger");
    }
    assert_eq!(run.exit_code(), 0);
    let (code, _, err) = state.cmd("release", &["--name", "x", "--owner-pid", &pb]);
    assert_eq!(code, 1, "release of a name nobody runs fails");
    assert!(err.contains("not running"), "{err}");
    kill_and_reap(&mut a);
    kill_and_reap(&mut b);
}

#[test]
fn release_of_a_pid_that_is_not_an_owner_is_an_error_and_changes_nothing() {
    let state = State::new();
    let mut a = owner();
    let mut run = state.run(
        &["--name", "x", "--owner-pid", &a.pinned.pid.to_string()],
        TREE,
    );
    let procs = run.tree();
    state.served("x");
    let (code, out, _) = state.cmd("release", &["--name", "x", "--owner-pid", "1", "--json"]);
    assert_eq!(code, 1);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["status"], "error");
    assert!(
        json["error"].as_str().unwrap().contains("not an owner"),
        "{json}"
    );
    assert_eq!(
        owner_pids(&state.record("x")),
        [i64::from(a.pinned.pid.get())]
    );
    kill_and_reap(&mut a);
    for p in &procs {
        p.wait_gone("the tree");
    }
}

// 7. attach over the socket.

#[test]
fn an_attached_lease_is_shown_and_watched_like_the_others() {
    let state = State::new();
    let (mut a, mut c) = (owner(), owner());
    let mut run = state.run(
        &["--name", "x", "--owner-pid", &a.pinned.pid.to_string()],
        TREE,
    );
    let procs = run.tree();
    state.served("x");
    let reply = raw_request(&state.socket("x"), &attach_line(&[c.pinned.pid]));
    assert_eq!(reply["ok"], true, "{reply}");
    let both = [i64::from(a.pinned.pid.get()), i64::from(c.pinned.pid.get())];
    let entry = state.entry("x").expect("x listed");
    assert_eq!(owner_pids(&entry["record"]), both);
    kill_and_reap(&mut c);
    eventually("the lease of the SIGKILLed owner goes", || {
        owner_pids(&state.record("x")) == [both[0]]
    });
    for p in &procs {
        assert!(p.is_running(), "A still owns the server");
    }
    kill_and_reap(&mut a);
    for p in &procs {
        p.wait_gone("the tree after both owners died");
    }
}

// 8. Bad control messages and foreign peers.

#[test]
fn bad_control_messages_get_an_error_reply_and_the_supervisor_keeps_running() {
    let state = State::new();
    let mut run = state.run(&["--name", "x", "--owner", "none"], TREE);
    let procs = run.tree();
    let mut oversize = vec![b' '; 70 * 1024];
    oversize.extend_from_slice(b"{\"op\":\"status\"}\n");
    for (what, bytes) in [
        ("oversize", oversize),
        ("malformed", b"{ this is not json\n".to_vec()),
        ("unknown op", b"{\"op\":\"explode\"}\n".to_vec()),
        (
            "bad owner",
            b"{\"op\":\"attach\",\"owners\":[{\"pid\":-1,\"start\":1}],\"client\":1}\n".to_vec(),
        ),
        ("empty", b"\n".to_vec()),
    ] {
        let reply = raw_request(&state.socket("x"), &bytes);
        assert_eq!(reply["ok"], false, "{what}: {reply}");
        assert!(reply["error"].is_string(), "{what}: {reply}");
    }
    let reply = raw_request(&state.socket("x"), b"{\"op\":\"status\"}\n");
    assert_eq!(reply["ok"], true, "still answering: {reply}");
    for p in &procs {
        assert!(p.is_running(), "pid {} must survive bad messages", p.pid);
    }
    assert!(run.pinned.is_running());
}

#[cfg(unix)] // Wine has one user: a client of another user cannot be made there
#[test]
fn a_peer_of_another_user_is_refused() {
    assert_eq!(
        sys::fixture::effective_uid(),
        0,
        "this test needs root (CI runs as root) to run a child as nobody"
    );
    let state = State::new();
    let mut run = state.run(&["--name", "x", "--owner", "none"], TREE);
    let procs = run.tree();
    // The 0700 state dir already keeps nobody out; to reach the peer check itself,
    // expose the socket through a hard link in an open directory.
    let open_dir = TempDir::new();
    std::fs::set_permissions(open_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exposed = open_dir.path().join("exposed.sock");
    std::fs::hard_link(state.socket("x"), &exposed).unwrap();
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut stranger = Launch::program(fixture_bin())
        .uid(NOBODY)
        .args(["connect", exposed.to_str().unwrap(), "{\"op\":\"stop\"}"])
        .spawn();
    let reply = stranger.expect_line("reply ");
    let reply: Value = serde_json::from_str(reply.trim_start_matches("reply ")).unwrap();
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("uid 65534"),
        "{reply}"
    );
    for p in &procs {
        assert!(p.is_running(), "the stranger's stop must not act");
    }
    let reply = raw_request(&exposed, b"{\"op\":\"status\"}\n");
    assert_eq!(reply["ok"], true, "our own uid is served: {reply}");
}

// 9. gc after a supervisor was SIGKILLed.

#[cfg(unix)] // Unix only: leftovers that outlive their supervisor (a Windows job leaves none)
#[test]
fn gc_kills_the_leftovers_of_a_sigkilled_supervisor_and_removes_its_record() {
    let state = State::new();
    let mut run = state.run(
        &["--name", "x", "--owner", "none"],
        &["tree", "--children", "2", "--escape"],
    );
    let procs = run.tree();
    state.served("x");
    let mut decoy = owner();
    let (server, supervisor) = run.server_and_supervisor();
    supervisor.signal(sys::SIGKILL);
    server.wait_gone("the server, by its parent-death signal");
    let leftovers: Vec<&Proc> = procs[1..].iter().collect();
    for p in &leftovers {
        assert!(
            p.is_running(),
            "grandchild {} outlives a SIGKILLed supervisor until gc",
            p.pid
        );
    }
    // gc --dry-run is the one command that does not sweep first.
    let (code, out, err) = state.cmd("gc", &["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would kill"), "{out}");
    assert!(state.has_record("x"), "--dry-run changes nothing");
    assert!(
        leftovers.iter().all(|p| p.is_running()),
        "--dry-run signals nothing"
    );
    let (code, out, err) = state.cmd("gc", &["--json"]);
    assert_eq!(code, 0, "{err}");
    let gc: Value = serde_json::from_str(&out).unwrap();
    let mut killed: Vec<i64> = gc["cleaned"][0]["killed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    killed.sort();
    let mut expected: Vec<i64> = leftovers.iter().map(|p| i64::from(p.pid.get())).collect();
    expected.sort();
    assert_eq!(killed, expected);
    for p in &leftovers {
        p.wait_gone("a leftover after gc");
    }
    assert!(!state.has_record("x"), "record removed");
    assert!(
        decoy.pinned.is_running(),
        "an unrelated process is untouched"
    );
    kill_and_reap(&mut decoy);
}

// 10. Junk under a name: what gc lists it clears (or says why not), and the name
// can be taken again.

/// Plants every kind of junk at `<prefix>-<kind>.<ext>`; returns the names, sorted.
fn plant_every_kind(state: &State, prefix: &str, ext: &str) -> Vec<String> {
    let target = state.tmp().file("precious", "do not touch\n");
    let mut names: Vec<String> = Junk::ALL
        .iter()
        .map(|junk| {
            let name = format!("{prefix}-{}", junk.word());
            junk.plant(&state.dir.join(format!("{name}.{ext}")), &target);
            name
        })
        .collect();
    names.sort();
    names
}

fn is_there(state: &State, file: &str) -> bool {
    std::fs::symlink_metadata(state.dir.join(file)).is_ok()
}

/// `gc --json`, or `gc --dry-run --json`: the exit code and the object.
fn gc_json(state: &State, dry_run: bool) -> (i32, Value) {
    let args: &[&str] = if dry_run {
        &["--dry-run", "--json"]
    } else {
        &["--json"]
    };
    let (code, out, err) = state.cmd("gc", args);
    let json = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("gc --json is not JSON ({e}): {out:?} {err:?}"));
    (code, json)
}

/// The names a gc object lists under `list`.
fn names_in(gc: &Value, list: &str) -> Vec<String> {
    gc[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {gc}"))
        .iter()
        .map(|e| e["name"].as_str().expect("a name").to_string())
        .collect()
}

/// Asserts that gc lists `name` with one directory moved aside, from `<file>` to
/// `<file>.moved-aside`.
fn assert_moved_aside(gc: &Value, state: &State, name: &str, file: &str) {
    let entry = gc["cleaned"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not cleaned: {gc}"));
    let path = state.dir.join(file);
    let to = state.dir.join(format!("{file}.moved-aside"));
    assert_eq!(
        entry["moved_aside"],
        serde_json::json!([{"path": path, "kind": "a directory", "to": to}]),
        "{entry}"
    );
}

/// The full directory that gc moved aside, with what was in it, and the target of
/// the symlink, untouched.
fn assert_nothing_lost(state: &State, file: &str) {
    let aside = state.dir.join(format!("{file}.moved-aside"));
    assert_eq!(
        std::fs::read_to_string(aside.join("inside")).unwrap(),
        "kept"
    );
    assert_eq!(
        std::fs::read_to_string(state.tmp().path().join("precious")).unwrap(),
        "do not touch\n",
        "the symlink was not followed"
    );
}

/// Each name can be taken again: a supervisor runs under it and writes its record;
/// then all of them stop.
fn assert_names_usable(state: &State, names: &[String]) {
    let mut runs: Vec<Running> = names
        .iter()
        .map(|name| state.run(&["--name", name, "--owner", "none"], &["tree"]))
        .collect();
    for (name, run) in names.iter().zip(&mut runs) {
        run.expect_line("ready");
        state.served(name);
        let record = std::fs::symlink_metadata(state.dir.join(format!("{name}.json")));
        assert!(
            record.is_ok_and(|m| m.is_file()),
            "{name}: the record is written"
        );
    }
    let (code, _, err) = state.cmd("stop", &["--all", "--wait"]);
    assert_eq!(code, 0, "{err}");
    for run in &mut runs {
        assert_eq!(run.exit_code(), 0, "{}", run.stderr());
    }
}

/// gc with and without `--dry-run` over the planted `files`: the dry run lists
/// the names `listed` and changes nothing, the run does what the dry run said and
/// `cleared` are gone. Returns what the run printed.
fn gc_as_planned(state: &State, files: &[String], listed: &[String], cleared: &[String]) -> Value {
    let (code, plan) = gc_json(state, true);
    assert_eq!(code, 0, "{plan}");
    assert_eq!(names_in(&plan, "cleaned"), listed, "{plan}");
    for file in files {
        assert!(is_there(state, file), "--dry-run leaves {file}");
    }
    let (code, gc) = gc_json(state, false);
    assert_eq!(code, 0, "{gc}");
    assert_eq!(
        gc["cleaned"], plan["cleaned"],
        "gc does what --dry-run said"
    );
    for file in cleared {
        assert!(!is_there(state, file), "{file} cleared: {gc}");
    }
    for json in [&plan, &gc] {
        assert_eq!(json["not_cleaned"], serde_json::json!([]), "{json}");
    }
    gc
}

#[test]
fn gc_clears_every_kind_of_junk_under_a_lock_and_the_name_is_taken_again() {
    let state = State::new();
    assert_eq!(state.cmd("status", &[]).0, 0);
    let names = plant_every_kind(&state, "lock", "lock");
    let files: Vec<String> = names.iter().map(|n| format!("{n}.lock")).collect();
    // Oversized: a lock file is locked at any size, so this one is a stale lock.
    let gc = gc_as_planned(&state, &files, &names, &files);
    assert_moved_aside(&gc, &state, "lock-fulldir", "lock-fulldir.lock");
    assert_nothing_lost(&state, "lock-fulldir.lock");
    assert_names_usable(&state, &names);
}

#[test]
fn gc_clears_every_kind_of_junk_under_a_record_and_the_name_is_recorded_again() {
    let state = State::new();
    assert_eq!(state.cmd("status", &[]).0, 0);
    let names = plant_every_kind(&state, "record", "json");
    let files: Vec<String> = names.iter().map(|n| format!("{n}.json")).collect();
    let gc = gc_as_planned(&state, &files, &names, &files);
    assert_moved_aside(&gc, &state, "record-fulldir", "record-fulldir.json");
    assert_nothing_lost(&state, "record-fulldir.json");
    assert_names_usable(&state, &names);
}

#[test]
fn gc_clears_a_directory_under_a_socket_and_the_name_is_taken_again() {
    let state = State::new();
    assert_eq!(state.cmd("status", &[]).0, 0);
    let names = plant_every_kind(&state, "socket", "sock");
    let mut run = state.run(&["--name", "socket-emptydir", "--owner", "none"], &["tree"]);
    assert_eq!(run.exit_code(), 125);
    assert!(
        run.stderr()
            .contains("a directory where the control socket belongs; run 'ocwrap gc'"),
        "{}",
        run.stderr()
    );
    // Only a directory keeps a socket from being bound: binding replaces the rest.
    let dirs = ["socket-emptydir".to_string(), "socket-fulldir".to_string()];
    let files: Vec<String> = names.iter().map(|n| format!("{n}.sock")).collect();
    let cleared: Vec<String> = dirs.iter().map(|n| format!("{n}.sock")).collect();
    let gc = gc_as_planned(&state, &files, &dirs, &cleared);
    assert_moved_aside(&gc, &state, "socket-fulldir", "socket-fulldir.sock");
    assert_names_usable(&state, &names);
    assert_nothing_lost(&state, "socket-fulldir.sock");
}

#[test]
fn gc_clears_junk_under_a_turn_lock_even_beside_a_live_supervisor_and_up_works_again() {
    let state = State::new();
    let mut live = state.run(&["--name", "turn-live", "--owner", "none"], TREE);
    let procs = live.tree();
    state.served("turn-live");
    let names = plant_every_kind(&state, "turn", "up");
    std::fs::create_dir(state.dir.join("turn-live.up")).unwrap();
    let up = |name: &str| {
        state.cmd(
            "up",
            &[
                "--json",
                "--name",
                name,
                "--owner",
                "none",
                "--",
                fixture_bin(),
                "tree",
            ],
        )
    };
    let (code, out, err) = up("turn-emptydir");
    assert_eq!(code, 125, "{out} {err}");
    assert!(
        out.contains("a directory where up's turn lock belongs; run 'ocwrap gc'"),
        "{out}"
    );
    // Oversized: a turn lock is locked at any size, so it is no junk.
    let mut junk: Vec<String> = names
        .iter()
        .filter(|n| *n != "turn-oversized")
        .cloned()
        .collect();
    junk.push("turn-live".to_string());
    junk.sort();
    let cleared: Vec<String> = junk.iter().map(|n| format!("{n}.up")).collect();
    let mut files = cleared.clone();
    files.push("turn-oversized.up".to_string());
    let gc = gc_as_planned(&state, &files, &junk, &cleared);
    assert_eq!(gc["live"], serde_json::json!(["turn-live"]), "{gc}");
    assert_moved_aside(&gc, &state, "turn-fulldir", "turn-fulldir.up");
    assert_nothing_lost(&state, "turn-fulldir.up");
    for p in &procs {
        assert!(p.is_running(), "the live supervisor's tree is untouched");
    }
    let (code, out, err) = up("turn-live");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "attached"
    );
    for name in &names {
        let (code, out, err) = up(name);
        assert_eq!(code, 0, "{name}: {out} {err}");
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["status"],
            "started",
            "{name}"
        );
    }
    assert!(
        !is_there(&state, "turn-oversized.up"),
        "up removes the turn lock it held, oversized or not"
    );
    let (code, _, err) = state.cmd("stop", &["--all", "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(live.exit_code(), 0);
}

#[test]
fn an_oversized_lock_that_someone_holds_is_live_and_left_alone() {
    let state = State::new();
    assert_eq!(state.cmd("status", &[]).0, 0);
    let path = state.dir.join("held.lock");
    Junk::Oversized.plant(&path, &path);
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    holder.lock().expect("hold the lock");
    for dry_run in [true, false] {
        let (code, gc) = gc_json(&state, dry_run);
        assert_eq!(code, 0, "{gc}");
        assert_eq!(gc["live"], serde_json::json!(["held"]), "{gc}");
        assert_eq!(gc["cleaned"], serde_json::json!([]), "{gc}");
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        2 << 20,
        "untouched"
    );
    drop(holder);
    let (code, gc) = gc_json(&state, false);
    assert_eq!(code, 0, "{gc}");
    assert_eq!(names_in(&gc, "cleaned"), ["held"], "{gc}");
    assert!(!path.exists(), "a free one is a stale lock, removed");
}

#[cfg(unix)] // Unix only: a directory another user cannot write
#[test]
fn junk_that_gc_cannot_clear_is_reported_with_its_path_and_gc_fails() {
    assert_eq!(
        sys::fixture::effective_uid(),
        0,
        "this test needs root (CI runs as root) to run ocwrap as nobody"
    );
    let tmp = TempDir::new();
    let dir = tmp.path().join("theirs");
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(dir.join("n.lock")).unwrap();
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    // Private to nobody, and read-only: nothing in it can be removed or renamed.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let gc = |args: &[&str]| {
        let mut run = Launch::ocwrap()
            .uid(NOBODY)
            .arg("gc")
            .args(args)
            .args(["--state-dir", dir.to_str().unwrap()])
            .spawn();
        let code = run.exit_code();
        (code, run.seen.join("\n"))
    };
    let (code, out) = gc(&["--json"]);
    assert_eq!(code, 1, "{out}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["cleaned"], serde_json::json!([]), "{json}");
    assert_eq!(names_in(&json, "not_cleaned"), ["n"], "{json}");
    let left = &json["not_cleaned"][0]["left"];
    assert_eq!(
        left[0]["path"],
        dir.join("n.lock").to_str().unwrap(),
        "{left}"
    );
    assert!(
        left[0]["error"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{left}"
    );
    let (code, out) = gc(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("could not clean n") && out.contains("is still there"),
        "{out}"
    );
    assert!(!out.contains("removed"), "{out}");
    assert!(dir.join("n.lock").is_dir());
}
