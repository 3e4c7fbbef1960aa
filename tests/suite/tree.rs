//! Containment and the tree's cost (docs/DESIGN.md, "Containment"): cgroup and group
//! containment each tear down everything the server started, however it escaped;
//! a SIGKILLed ocwrap's cgroup holds exactly its leftovers and gc removes them; the
//! walk down from the supervisor finds a 1,000-process tree and processes forked
//! during teardown; a busy host changes nothing and is never signalled. No test
//! depends on how many processes the host runs, and none leaves a cgroup behind.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{
    Launch, Proc, Running, TempDir, assert_all_gone, fixture_bin, kill_and_reap, ocwrap_once,
    owner, status_json,
};
use ocwrap::process::Pid;
use ocwrap::sys;

/// A tree with two grandchildren and one `setsid`+double-fork escapee whose
/// intermediate parent exits at once.
const TREE: &[&str] = &["tree", "--children", "2", "--escape"];

/// `ocwrap --owner-pid OWNER --contain HOW --state-dir STATE --name t EXTRA… --
/// fixture FIXTURE…`, started: (owner, ocwrap).
fn owned(how: &str, state: &TempDir, extra: &[&str], fixture: &[&str]) -> (Running, Running) {
    let session = owner();
    let run = Launch::ocwrap()
        .args(["--owner-pid", &session.pinned.pid.to_string()])
        .args(["--contain", how, "--name", "t"])
        .arg("--state-dir")
        .arg(state.path())
        .args(extra)
        .server(fixture)
        .spawn();
    (session, run)
}

/// The record of the one supervisor in `state`.
fn record(state: &TempDir) -> serde_json::Value {
    let status = status_json(state.path());
    status["supervisors"][0]["record"].clone()
}

fn cgroup_of(state: &TempDir) -> PathBuf {
    let record = record(state);
    assert_eq!(record["contain"], "cgroup", "{record}");
    PathBuf::from(
        record["cgroup"]
            .as_str()
            .expect("the record names a cgroup"),
    )
}

fn cgroup_members(cgroup: &Path) -> Vec<Pid> {
    let text = std::fs::read_to_string(cgroup.join("cgroup.procs")).expect("read cgroup.procs");
    let mut pids: Vec<Pid> = text.lines().filter_map(|l| l.parse().ok()).collect();
    pids.sort();
    pids
}

fn sorted(procs: &[Proc]) -> Vec<Pid> {
    let mut pids: Vec<Pid> = procs.iter().map(|p| p.pid).collect();
    pids.sort();
    pids
}

/// The number in ocwrap's `-v` line `SIGTERM: N processes …`.
fn sigterm_count(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("ocwrap: SIGTERM: "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no 'SIGTERM: N processes' line in {stderr:?}"))
}

#[test]
fn with_cgroup_containment_a_double_forked_escapee_is_in_the_cgroup_and_torn_down() {
    let state = TempDir::new();
    let (mut session, mut run) = owned("cgroup", &state, &[], TREE);
    let procs = run.tree();
    assert_eq!(procs.len(), 4, "server, two grandchildren, escapee");
    let cgroup = cgroup_of(&state);
    assert_eq!(
        cgroup_members(&cgroup),
        sorted(&procs),
        "the cgroup holds the whole tree, the escapee included"
    );
    kill_and_reap(&mut session);
    assert_all_gone(&procs);
    assert_eq!(run.exit_code(), 0, "{}", run.stderr());
    assert!(!cgroup.exists(), "{} is removed", cgroup.display());
}

#[test]
fn after_ocwrap_is_sigkilled_its_cgroup_holds_exactly_the_leftovers_and_gc_removes_it() {
    let state = TempDir::new();
    let mut run = Launch::ocwrap()
        .args(["--owner", "none", "--contain", "cgroup", "--name", "left"])
        .arg("--state-dir")
        .arg(state.path())
        .server(TREE)
        .spawn();
    run.tree();
    let (server, supervisor) = run.server_and_supervisor();
    let cgroup = cgroup_of(&state);
    supervisor.signal(sys::SIGKILL);
    supervisor.wait_gone("the SIGKILLed supervisor");
    server.wait_gone("the server, by its parent-death signal");
    let mut leftovers = run.all("child");
    leftovers.extend(run.all("escapee"));
    assert_eq!(
        cgroup_members(&cgroup),
        sorted(&leftovers),
        "the dead supervisor's cgroup holds exactly what is left"
    );
    let dir = state.path().to_str().expect("utf-8 path");
    let (code, out, err) = ocwrap_once(&["gc", "--json", "--state-dir", dir]);
    assert_eq!(code, 0, "{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).expect("gc --json");
    let mut killed: Vec<Pid> = serde_json::from_value(answer["cleaned"][0]["killed"].clone())
        .unwrap_or_else(|e| panic!("killed PIDs in {answer}: {e}"));
    killed.sort();
    assert_eq!(killed, sorted(&leftovers), "{answer}");
    assert_all_gone(&leftovers);
    assert!(!cgroup.exists(), "gc removed {}", cgroup.display());
}

/// A cgroup of the test's own, beside the ones ocwrap makes (in the cgroup this
/// test process runs in, found from /proc as ocwrap finds its own), removed on
/// drop: where a descendant moves itself, as `systemd-run --scope` or tmux would.
struct ElsewhereCgroup(PathBuf);

impl ElsewhereCgroup {
    fn new(tag: &str) -> ElsewhereCgroup {
        let mounts = std::fs::read_to_string("/proc/self/mounts").expect("read mounts");
        let mount = mounts
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.get(2) == Some(&"cgroup2"))
            .map(|f| PathBuf::from(f[1]))
            .expect("a cgroup2 mount");
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("read our cgroup");
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("our cgroup v2 path");
        let dir = mount.join(own.trim_start_matches('/')).join(format!(
            "ocwrap-test-elsewhere-{}-{tag}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).expect("make a cgroup of our own");
        ElsewhereCgroup(dir)
    }

    fn holds(&self, pid: Pid) -> bool {
        cgroup_members(&self.0).contains(&pid)
    }
}

impl Drop for ElsewhereCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn a_descendant_that_moves_itself_to_another_cgroup_is_torn_down(how: &str) {
    let elsewhere = ElsewhereCgroup::new(how);
    let state = TempDir::new();
    let dir = elsewhere.0.to_str().expect("utf-8 path");
    let (mut session, mut run) = owned(how, &state, &["-v"], &["tree", "--leave-cgroup", dir]);
    let mut procs = run.tree();
    let leaver = run.proc("leaver");
    assert!(elsewhere.holds(leaver.pid), "the leaver moved itself");
    procs.push(leaver);
    kill_and_reap(&mut session);
    assert_all_gone(&procs);
    assert_eq!(run.exit_code(), 0, "{}", run.stderr());
}

#[test]
fn with_cgroup_containment_a_descendant_that_moves_to_another_cgroup_is_torn_down() {
    a_descendant_that_moves_itself_to_another_cgroup_is_torn_down("cgroup");
}

#[test]
fn with_group_containment_a_descendant_that_moves_to_another_cgroup_is_torn_down() {
    a_descendant_that_moves_itself_to_another_cgroup_is_torn_down("group");
}

#[test]
fn after_ocwrap_is_sigkilled_a_descendant_outside_its_cgroup_is_swept_by_its_marker() {
    let elsewhere = ElsewhereCgroup::new("swept");
    let state = TempDir::new();
    let dir = elsewhere.0.to_str().expect("utf-8 path");
    let mut run = Launch::ocwrap()
        .args(["--owner", "none", "--contain", "cgroup", "--name", "left"])
        .arg("--state-dir")
        .arg(state.path())
        .server(&["tree", "--leave-cgroup", dir])
        .spawn();
    run.tree();
    let leaver = run.proc("leaver");
    assert!(elsewhere.holds(leaver.pid), "the leaver moved itself");
    let (server, supervisor) = run.server_and_supervisor();
    supervisor.signal(sys::SIGKILL);
    supervisor.wait_gone("the SIGKILLed supervisor");
    server.wait_gone("the server, by its parent-death signal");
    assert!(
        leaver.is_running(),
        "outside the cgroup, it outlived the kill"
    );
    let state_dir = state.path().to_str().expect("utf-8 path");
    let (code, out, err) = ocwrap_once(&["gc", "--json", "--state-dir", state_dir]);
    assert_eq!(code, 0, "{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).expect("gc --json");
    let killed: Vec<Pid> = serde_json::from_value(answer["cleaned"][0]["killed"].clone())
        .unwrap_or_else(|e| panic!("killed PIDs in {answer}: {e}"));
    assert!(killed.contains(&leaver.pid), "{answer}");
    leaver.wait_gone("the leaver, by its tree marker");
}

#[test]
fn with_group_containment_the_walk_finds_a_thousand_process_tree() {
    let session = owner();
    let mut run = Launch::ocwrap()
        .env("OCWRAP_CONTAIN", "group")
        .args(["-v", "--owner-pid", &session.pinned.pid.to_string()])
        .server(&["wide", "1000"])
        .spawn();
    run.expect_line("ready 1000");
    let mut session = session;
    kill_and_reap(&mut session);
    assert_eq!(run.exit_code(), 0, "{}", run.stderr());
    // Every process of the tree inherited ocwrap's stderr: its end means all gone.
    run.wait_stderr_closed("the 1,000-process tree");
    let stderr = run.stderr();
    assert!(stderr.contains("containment: process group"), "{stderr}");
    assert!(
        sigterm_count(&stderr) >= 1000,
        "SIGTERM reached the whole tree: {stderr}"
    );
}

/// 200 processes, each in a session of its own (out of the group's reach), under
/// a supervisor with 64 descriptors: fewer than it takes to pin them all. Each
/// must still get SIGTERM before the grace starts: with a 60 s grace, the whole
/// tree is gone long before SIGKILL could have come.
fn sigterm_reaches_more_processes_than_descriptors(how: &str) {
    let mut session = owner();
    let mut run = Launch::program("sh")
        .args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\""])
        .arg(crate::support::ocwrap_bin())
        .args(["-v", "--contain", how, "--grace", "60s", "--owner-pid"])
        .arg(session.pinned.pid.to_string())
        .server(&["wide", "200", "--sessions"])
        .spawn();
    run.expect_line("ready 200");
    kill_and_reap(&mut session);
    // Every process of the tree inherited ocwrap's stderr: its end means all gone.
    run.wait_stderr_closed("the 200-process tree, by SIGTERM");
    assert_eq!(run.exit_code(), 0, "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        !stderr.contains("SIGKILL"),
        "no SIGKILL was needed: {stderr}"
    );
}

#[test]
fn with_group_containment_sigterm_reaches_more_processes_than_descriptors() {
    sigterm_reaches_more_processes_than_descriptors("group");
}

#[test]
fn with_cgroup_containment_sigterm_reaches_more_processes_than_descriptors() {
    sigterm_reaches_more_processes_than_descriptors("cgroup");
}

#[test]
fn with_group_containment_a_chain_forked_during_teardown_is_torn_down() {
    let state = TempDir::new();
    let (mut session, mut run) = owned(
        "group",
        &state,
        &["--grace", "1s"],
        &["tree", "--signals", "--late-chain", "3"],
    );
    let procs = run.tree();
    let record = record(&state);
    assert_eq!(record["contain"], "group", "{record}");
    assert!(record["cgroup"].is_null(), "{record}");
    kill_and_reap(&mut session);
    // On SIGTERM the server starts a chain of three processes, each in a new
    // session and ignoring SIGTERM, then exits.
    run.expect_lines("late ", 3);
    let late = run.all("late");
    assert_all_gone(&procs);
    assert_all_gone(&late);
    assert_eq!(run.exit_code(), 0, "{}", run.stderr());
}

#[test]
fn beside_two_thousand_idle_processes_an_owner_sigkill_tears_down_the_tree_and_signals_none_of_them()
 {
    let mut decoys = Launch::program(fixture_bin())
        .args(["decoys", "2000"])
        .stdin(Stdio::piped())
        .spawn();
    let line = decoys.expect_line("decoys ");
    assert!(line.starts_with("decoys 2000 "), "{line}");
    for how in ["group", "cgroup"] {
        let state = TempDir::new();
        let (mut session, mut run) = owned(how, &state, &[], TREE);
        let procs = run.tree();
        let began = Instant::now();
        kill_and_reap(&mut session);
        assert_all_gone(&procs);
        let took = began.elapsed();
        assert_eq!(run.exit_code(), 0, "{how}: {}", run.stderr());
        assert!(
            took < Duration::from_secs(5),
            "{how}: torn down promptly, not in {took:?}"
        );
    }
    let stdin = decoys.child.stdin.as_mut().expect("piped stdin");
    writeln!(stdin, "check").expect("ask the decoys' parent to check them");
    decoys.expect_line("checked 2000");
    let disturbed: Vec<&String> = decoys
        .seen
        .iter()
        .filter(|l| l.starts_with("disturbed"))
        .collect();
    assert!(
        disturbed.is_empty(),
        "outside processes were signalled: {disturbed:?}"
    );
    // End them all: their parent, through its pidfd; each dies with it.
    decoys.pinned.signal(sys::SIGKILL);
    decoys.wait_stdout_closed("the 2,000 idle processes");
}

#[test]
fn a_cgroup_that_cannot_be_had_is_an_error_with_cgroup_and_a_fallback_with_auto() {
    // As nobody, the cgroup we run in (root's) is not ours to write.
    let dir = TempDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod the temp dir");
    let state = dir.path().join("nobody-state");
    let as_nobody = |how: &str| {
        let mut run = Launch::ocwrap()
            .uid(65534)
            .args(["-v", "--owner", "none", "--contain", how, "--state-dir"])
            .arg(&state)
            .args(["--", "true"])
            .spawn();
        let code = run.exit_code();
        (code, run.stderr())
    };
    let (code, stderr) = as_nobody("cgroup");
    assert_eq!(code, 125, "{stderr}");
    assert!(stderr.contains("cgroup"), "{stderr}");
    let (code, stderr) = as_nobody("auto");
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("containment: process group"), "{stderr}");
}
