//! The guard (docs/DESIGN.md, "The guard"), run on Linux with `--guard` as it
//! runs on macOS by default: a SIGKILLed ocwrap's whole tree goes at once, the
//! escapees that left its group included, with no other command; a dead guard
//! makes the supervisor tear down; a clean end lets the guard go without a look.
//! The guard is in a session of its own, so no group signal reaches it with
//! ocwrap or the server, and it can never be an owner.

use std::path::Path;

use crate::support::{Proc, Running, State, assert_all_gone, attach_line, raw_request};
use ocwrap::process::Pid;
use ocwrap::sys;

/// Two grandchildren in the server's group and one `setsid`+double-fork escapee.
const TREE: &[&str] = &["tree", "--children", "2", "--escape", "--signals"];

/// The supervisor's guard: its child that is not of the server's tree (an
/// escapee reparents to the supervisor too).
fn guard_of(supervisor: Pid, tree: &[Proc]) -> Proc {
    let guards: Vec<Pid> = sys::children(supervisor)
        .into_iter()
        .filter(|&c| tree.iter().all(|p| p.pid != c))
        .collect();
    assert_eq!(guards.len(), 1, "one guard beside the tree: {guards:?}");
    Proc::pin(guards[0])
}

/// `(session, process group)` of `pid`, from `/proc/PID/stat`.
fn session_and_group(pid: Pid) -> (i32, i32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm")
        .1
        .split_whitespace()
        .collect();
    (
        fields[3].parse().expect("session"),
        fields[2].parse().expect("group"),
    )
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A guarded run of [`TREE`]: (ocwrap, its tree, server, supervisor, guard).
fn guarded(dir: &State, contain: &str) -> (Running, Vec<Proc>, Proc, Proc) {
    let mut run = dir.run(
        &[
            "--guard",
            "--contain",
            contain,
            "--owner",
            "none",
            "--name",
            "g",
        ],
        TREE,
    );
    let procs = run.tree();
    let (_, supervisor) = run.server_and_supervisor();
    let guard = guard_of(supervisor.pid, &procs);
    (run, procs, supervisor, guard)
}

#[test]
fn a_sigkilled_ocwrap_takes_its_whole_tree_with_it_escapees_included_and_leaves_no_files() {
    for contain in ["group", "auto"] {
        let dir = State::new();
        let (_run, procs, supervisor, guard) = guarded(&dir, contain);
        let (sid, pgid) = session_and_group(guard.pid);
        assert_eq!(
            (sid, pgid),
            (guard.pid.get(), guard.pid.get()),
            "{contain}: the guard leads a session of its own"
        );
        supervisor.signal(sys::SIGKILL);
        // The guard tears the tree down before it exits, and sweeps after the
        // supervisor's exit, with no other command.
        guard.wait_gone(&format!("{contain}: the guard, its work done"));
        assert_all_gone(&procs);
        assert_eq!(
            files_in(&dir.dir),
            Vec::<String>::new(),
            "{contain}: the guard swept the dead registration"
        );
    }
}

#[test]
fn the_guard_cannot_be_an_owner() {
    let dir = State::new();
    let (mut run, procs, supervisor, guard) = guarded(&dir, "group");
    let reply = raw_request(&dir.socket("g"), &attach_line(&[guard.pid]));
    assert_eq!(reply["kind"], "owner_in_tree", "{reply}");
    supervisor.signal(sys::SIGTERM);
    assert_eq!(run.exit_code(), 128 + crate::support::number(sys::SIGTERM));
    assert_all_gone(&procs);
}

#[test]
fn a_killed_guard_makes_its_supervisor_tear_the_tree_down() {
    let dir = State::new();
    let (mut run, procs, _supervisor, guard) = guarded(&dir, "group");
    guard.signal(sys::SIGKILL);
    assert_eq!(
        run.exit_code(),
        128 + crate::support::number(sys::SIGTERM),
        "the server's status after teardown's SIGTERM: {}",
        run.stderr()
    );
    assert_all_gone(&procs);
    assert!(
        run.stderr()
            .contains("the guard process died: tearing down"),
        "{}",
        run.stderr()
    );
}

#[test]
fn after_a_clean_stop_the_guard_goes_without_tearing_anything_down() {
    let dir = State::new();
    let (mut run, procs, _supervisor, guard) = guarded(&dir, "group");
    let (code, _, err) = dir.cmd("stop", &["--name", "g", "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(run.exit_code(), 0, "{}", run.stderr());
    assert_all_gone(&procs);
    guard.wait_gone("the dismissed guard");
    // All it could have said is in: the guard and the tree held the same stderr.
    run.wait_stderr_closed("the guard and the tree");
    // A guard that missed `done` would take the end of the link for a death and
    // say so, whatever it found.
    assert!(
        !run.stderr().contains("its guard tore down"),
        "{}",
        run.stderr()
    );
}
