//! Bad input: durations past the limit, boolean environment values, hosts
//! and state-dir paths that slipped through their checks, and owners that can never
//! exit. Each is refused before anything starts, with the right exit code and a
//! message that names the problem; each good spelling next to it still works.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{
    Launch, Proc, Running, TempDir, free_port, kill_and_reap, owner, raw_request,
};
#[cfg(unix)]
use crate::support::{assert_state_dir_refused, fixture_bin, ocwrap_bin, word};
use ocwrap::process::Pid;
#[cfg(unix)]
use ocwrap::sys;

/// 365 days in seconds: the longest DUR (`ocwrap::duration::MAX_DURATION`).
const MAX_SECONDS: &str = "31536000";

/// A state dir that does not exist yet and a port nobody listens on: after a
/// refusal, both must still be untouched.
struct Case {
    _tmp: TempDir,
    dir: PathBuf,
    port: u16,
}

impl Case {
    fn new() -> Case {
        let tmp = TempDir::new();
        let dir = tmp.path().join("state");
        Case {
            _tmp: tmp,
            dir,
            port: free_port(),
        }
    }

    fn dir(&self) -> &str {
        self.dir.to_str().expect("utf-8 path")
    }

    fn port(&self) -> String {
        self.port.to_string()
    }

    /// `ocwrap [SUBCOMMAND] --state-dir D --port P EXTRA… -- fixture tree --listen P`:
    /// a server that would answer on P and print its PID if it were ever started.
    fn launch(&self, subcommand: Option<&str>, extra: &[&str]) -> Launch {
        Launch::ocwrap()
            .args(subcommand)
            .args(["--state-dir", self.dir(), "--port", &self.port()])
            .args(extra)
            .server(&["tree", "--listen", &self.port()])
    }

    /// Runs it to the end and checks the exit code and that stderr says `needles`.
    fn refused(&self, launch: Launch, code: i32, needles: &[&str]) -> Running {
        let mut run = launch.spawn();
        assert_eq!(run.exit_code(), code, "{}", run.stderr());
        for needle in needles {
            assert!(
                run.stderr().contains(needle),
                "{needle:?} in {:?}",
                run.stderr()
            );
        }
        assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
        self.assert_nothing_started(&run);
        run
    }

    /// No server printed its PID, nothing listens on the port, and the state dir
    /// holds no record, lock, socket or log (it may exist: `run` and `up` open it
    /// before they resolve owners).
    fn assert_nothing_started(&self, run: &Running) {
        assert!(
            !run.seen.iter().any(|l| l.starts_with("server ")),
            "no server may start: {:?}",
            run.seen
        );
        assert!(
            TcpStream::connect(("127.0.0.1", self.port)).is_err(),
            "nothing may listen on port {}",
            self.port
        );
        let left: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .map(|e| e.expect("read the state dir").path())
            .collect();
        assert!(left.is_empty(), "the state dir stays empty: {left:?}");
    }
}

// 1. Durations are bounded at parse time.

#[test]
fn a_duration_over_365_days_is_a_usage_error_naming_option_and_limit() {
    let case = Case::new();
    for (option, value) in [
        ("--grace", "10000000000000000000"),
        ("--linger", "31536001"),
        ("--grace", "8761h"),
        ("--linger", "525601m"),
    ] {
        case.refused(
            case.launch(None, &[option, value]),
            2,
            &[
                &format!("invalid value '{value}' for '{option} <DUR>'"),
                "at most 365 days",
            ],
        );
    }
    case.refused(
        case.launch(Some("up"), &["--ready-timeout", "99999999999h"]),
        2,
        &["'--ready-timeout <DUR>'", "at most 365 days"],
    );
    case.refused(
        case.launch(None, &[])
            .env("OCWRAP_GRACE", "10000000000000000000"),
        2,
        &["'--grace <DUR>'", "at most 365 days"],
    );
}

#[test]
fn the_longest_duration_is_accepted() {
    let mut run = Launch::ocwrap()
        .args([
            "--owner",
            "none",
            "--grace",
            MAX_SECONDS,
            "--linger",
            "8760h",
        ])
        .server(&["tree", "--exit", "0"])
        .spawn();
    let (code, err) = (run.exit_code(), run.stderr());
    assert_eq!(code, 0, "{err}");
}

#[cfg_attr(
    windows,
    ignore = "Wine does not deliver CTRL_BREAK_EVENT, so the tree waits out its 365-day grace"
)]
#[test]
fn a_teardown_with_the_longest_grace_does_not_panic() {
    let mut session = owner();
    let mut run = Launch::ocwrap()
        .args(["--owner-pid", &session.pinned.pid.to_string()])
        .args(["--grace", MAX_SECONDS])
        .server(&["tree", "--children", "1"])
        .spawn();
    let tree = run.tree();
    kill_and_reap(&mut session);
    for proc in &tree {
        proc.wait_gone("a process of the server's tree");
    }
    assert_eq!(run.exit_code(), 0, "{}", run.stderr());
    assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
}

#[cfg_attr(
    windows,
    ignore = "Wine does not deliver CTRL_BREAK_EVENT, so the tree waits out its 365-day grace"
)]
#[test]
fn up_accepts_the_longest_ready_timeout() {
    let case = Case::new();
    let mut session = owner();
    let mut up = Launch::ocwrap()
        .args([
            "up",
            "--json",
            "--state-dir",
            case.dir(),
            "--port",
            &case.port(),
        ])
        .args(["--owner-pid", &session.pinned.pid.to_string()])
        .args(["--ready-timeout", MAX_SECONDS, "--grace", MAX_SECONDS])
        .server(&["tree", "--listen", &case.port()])
        .spawn();
    assert_eq!(up.exit_code(), 0, "{}", up.stderr());
    let reply: Value = serde_json::from_str(&up.seen.join("\n")).expect("one JSON object");
    assert_eq!(reply["status"], "started", "{reply}");
    let supervisor = reply["supervisor_pid"]
        .as_i64()
        .and_then(|pid| Pid::new(i32::try_from(pid).ok()?))
        .map(Proc::pin)
        .expect("a supervisor pid");
    kill_and_reap(&mut session);
    supervisor.wait_gone("the supervisor after its owner died");
}

// 2. Boolean environment values.

#[test]
fn boolean_environment_values_are_read_in_every_usual_spelling() {
    for (value, verbose) in [
        ("1", true),
        ("true", true),
        ("yes", true),
        ("on", true),
        ("TRUE", true),
        ("On", true),
        ("0", false),
        ("false", false),
        ("no", false),
        ("off", false),
        ("FALSE", false),
        ("Off", false),
    ] {
        let mut run = Launch::ocwrap()
            .env("OCWRAP_VERBOSE", value)
            .args(["--owner", "none"])
            .server(&["tree", "--exit", "0"])
            .spawn();
        assert_eq!(
            run.exit_code(),
            0,
            "OCWRAP_VERBOSE={value}: {}",
            run.stderr()
        );
        assert_eq!(
            run.stderr().contains("ocwrap: started"),
            verbose,
            "OCWRAP_VERBOSE={value}: {:?}",
            run.stderr()
        );
    }
}

#[cfg(unix)] // Unix only: sessions
/// `OCWRAP_SESSION=VALUE ocwrap -- fixture tree --exit 0`: whether the server led
/// its own session.
fn server_leads_a_session(value: &str) -> bool {
    let mut run = Launch::ocwrap()
        .env("OCWRAP_SESSION", value)
        .args(["--owner", "none"])
        .server(&["tree", "--exit", "0"])
        .spawn();
    let line = run.expect_line("server ");
    assert_eq!(
        run.exit_code(),
        0,
        "OCWRAP_SESSION={value}: {}",
        run.stderr()
    );
    // A session whose leader is outside our PID namespace reads as `sid 0` (CI
    // runs under such a leader), so the words are compared, not parsed as PIDs.
    word(&line, "sid") == word(&line, "server")
}

#[cfg(unix)] // Unix only: sessions
#[test]
fn the_session_flag_reads_its_environment_form() {
    for value in ["1", "yes", "on", "true"] {
        assert!(server_leads_a_session(value), "OCWRAP_SESSION={value}");
    }
    for value in ["0", "no", "off", "false"] {
        assert!(!server_leads_a_session(value), "OCWRAP_SESSION={value}");
    }
}

#[test]
fn up_json_reads_its_environment_form() {
    let case = Case::new();
    // Something answers on the port: `up` reports `external` and starts nothing.
    let listener = TcpListener::bind(("127.0.0.1", case.port)).expect("bind the port");
    for (value, json) in [("1", true), ("ON", true), ("0", false), ("no", false)] {
        let mut up = Launch::ocwrap()
            .env("OCWRAP_JSON", value)
            .args(["up", "--state-dir", case.dir(), "--port", &case.port()])
            .server(&["tree", "--exit", "0"])
            .spawn();
        assert_eq!(up.exit_code(), 0, "OCWRAP_JSON={value}: {}", up.stderr());
        let out = up.seen.join("\n");
        assert_eq!(
            serde_json::from_str::<Value>(&out).is_ok(),
            json,
            "OCWRAP_JSON={value}: {out:?}"
        );
        assert!(out.contains("external"), "OCWRAP_JSON={value}: {out:?}");
    }
    drop(listener);
}

#[test]
fn other_boolean_environment_values_are_usage_errors() {
    let case = Case::new();
    let hint = "use 1/0, true/false, yes/no or on/off";
    for (key, value) in [
        ("OCWRAP_VERBOSE", "maybe"),
        ("OCWRAP_VERBOSE", ""),
        ("OCWRAP_VERBOSE", "2"),
        ("OCWRAP_SESSION", "enabled"),
        ("OCWRAP_SESSION", "y"),
    ] {
        case.refused(
            case.launch(None, &[]).env(key, value),
            2,
            &[&format!("invalid value '{value}'"), hint],
        );
    }
    case.refused(
        case.launch(Some("up"), &[]).env("OCWRAP_JSON", "sure"),
        2,
        &["invalid value 'sure' for '--json'", hint],
    );
}

#[test]
fn boolean_flags_take_no_value_on_the_command_line() {
    let case = Case::new();
    for flag in ["--verbose=1", "--session=yes"] {
        case.refused(case.launch(None, &[flag]), 2, &["unexpected value"]);
    }
    let mut run = Launch::ocwrap()
        .args(["-v", "--session", "--owner", "none"])
        .server(&["tree", "--exit", "0"])
        .spawn();
    let (code, err) = (run.exit_code(), run.stderr());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ocwrap: started"), "{err:?}");
}

// 3. Host and state-dir paths.

#[test]
fn a_host_that_is_not_exactly_loopback_is_a_usage_error_naming_it() {
    let case = Case::new();
    for host in [
        "[[::1]]",
        "[::1",
        "::1]",
        "[127.0.0.1]",
        "[localhost]",
        "10.0.0.1",
    ] {
        for subcommand in [None, Some("up")] {
            case.refused(
                case.launch(subcommand, &["--host", host]),
                2,
                &[&format!("not '{host}'")],
            );
        }
    }
}

#[test]
fn a_bracketed_ipv6_host_is_stored_bare_and_bracketed_once_in_the_url() {
    let case = Case::new();
    let mut session = owner();
    let mut run = Launch::ocwrap()
        .args(["--state-dir", case.dir(), "--port", &case.port()])
        .args(["--host", "[::1]", "--name", "v6"])
        .args(["--owner-pid", &session.pinned.pid.to_string()])
        .server(&["sleep"])
        .spawn();
    run.expect_line("sleeper ");
    // Nothing listens, so the server stays `starting`: ask the supervisor itself.
    let reply = raw_request(&case.dir.join("v6.sock"), b"{\"op\":\"status\"}\n");
    assert_eq!(
        reply["record"]["url"],
        format!("http://[::1]:{}", case.port)
    );
    kill_and_reap(&mut session);
    assert_eq!(run.exit_code(), 0, "{}", run.stderr());
}

#[cfg(unix)] // Unix only: symlinks a user can make
/// A real `0700` directory and a symlink to it, in a temp dir.
fn symlinked_dir() -> (TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).expect("create the real dir");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    (tmp, real, link)
}

#[cfg(unix)]
fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).expect("read the dir").collect();
    assert!(
        left.is_empty(),
        "nothing written to {}: {left:?}",
        dir.display()
    );
}

#[cfg(unix)] // Unix only: symlinks a user can make
#[test]
fn a_symlinked_state_dir_is_refused_however_it_is_spelled() {
    let (_tmp, real, link) = symlinked_dir();
    let link = link.to_str().expect("utf-8 path");
    for spelling in ["/", "/.", "//", "/./"] {
        assert_state_dir_refused(&format!("{link}{spelling}"), "is a symlink");
    }
    assert_empty(&real);
}

#[cfg(unix)] // Unix only: symlinks a user can make
#[test]
fn a_state_dir_ending_in_dot_dot_is_refused() {
    let (_tmp, real, link) = symlinked_dir();
    let inner = real.join("inner");
    std::fs::create_dir(&inner).expect("create a dir inside");
    for path in [inner.join(".."), link.join("inner/..")] {
        assert_state_dir_refused(path.to_str().expect("utf-8 path"), "ends in '..'");
    }
    std::fs::remove_dir(&inner).expect("remove the inner dir");
    assert_empty(&real);
}

#[cfg(unix)] // Unix only: XDG_RUNTIME_DIR and TMPDIR (Windows: the test after it)
/// Starts a supervisor in `cwd` with this environment (XDG_RUNTIME_DIR and
/// TMPDIR empty unless given) and asserts that it registered in `expected`: its
/// control socket is bound there before the server starts.
fn assert_registers_in(cwd: &Path, env: &[(&str, &str)], expected: &Path) {
    let name = format!("absolute-{}", std::process::id());
    let mut launch = Launch::ocwrap()
        .current_dir(cwd)
        .env("XDG_RUNTIME_DIR", "")
        .env("TMPDIR", "");
    for (key, value) in env {
        launch = launch.env(key, value);
    }
    let mut run = launch
        .args(["--owner", "none", "--name", &name])
        .server(&["tree"])
        .spawn();
    run.expect_line("server ");
    let socket = expected.join(format!("{name}.sock"));
    let registered = socket.exists();
    kill_and_reap(&mut run);
    assert!(registered, "with {env:?}: no {}", socket.display());
}

#[cfg(unix)] // Unix only: XDG_RUNTIME_DIR and TMPDIR (Windows: the test after it)
#[test]
fn the_default_state_dir_is_absolute_whatever_the_environment_says() {
    let tmp = TempDir::new();
    let cwd = tmp.path().join("cwd");
    let tmpdir = tmp.path().join("tmp");
    for dir in [&cwd, &tmpdir] {
        std::fs::create_dir(dir).expect("make a dir");
    }
    let tmpdir_text = tmpdir.to_str().expect("utf-8 path");
    let uid = sys::fixture::effective_uid();
    let system = PathBuf::from(format!("/tmp/ocwrap-{uid}"));
    for (env, expected) in [
        // A relative XDG_RUNTIME_DIR is invalid (XDG spec): TMPDIR is next.
        (
            vec![("XDG_RUNTIME_DIR", "run"), ("TMPDIR", tmpdir_text)],
            tmpdir.join(format!("ocwrap-{uid}")),
        ),
        // An empty or relative TMPDIR means the system's default.
        (vec![], system.clone()),
        (vec![("TMPDIR", "rel")], system.clone()),
        (vec![("XDG_RUNTIME_DIR", "./x"), ("TMPDIR", "t")], system),
    ] {
        assert_registers_in(&cwd, &env, &expected);
        assert_empty(&cwd);
    }
}

#[cfg(windows)] // Windows only: %LOCALAPPDATA%
#[test]
fn the_default_state_dir_is_under_local_app_data() {
    let tmp = TempDir::new();
    let mut run = Launch::ocwrap()
        .env("LOCALAPPDATA", tmp.path())
        .arg("status")
        .spawn();
    assert_eq!(run.exit_code(), 0, "status: {}", run.stderr());
    assert!(
        tmp.path().join("ocwrap").is_dir(),
        "no %LOCALAPPDATA%\\ocwrap"
    );
}

#[test]
fn a_relative_state_dir_option_names_one_directory_from_anywhere() {
    let tmp = TempDir::new();
    let (first, second) = (tmp.path().join("a"), tmp.path().join("b"));
    for dir in [&first, &second] {
        std::fs::create_dir(dir).expect("make a dir");
    }
    let port = free_port().to_string();
    let up = |cwd: &Path, owner: &Running| {
        Launch::ocwrap()
            .current_dir(cwd)
            .args(["up", "--json", "--state-dir", "../state", "--port", &port])
            .args(["--owner-pid", &owner.child.id().to_string()])
            .server(&["tree", "--listen", &port])
            .spawn()
    };
    let (mut one, mut two) = (owner(), owner());
    let mut started = up(&first, &one);
    assert_eq!(started.exit_code(), 0, "{}", started.stderr());
    let mut attached = up(&second, &two);
    assert_eq!(attached.exit_code(), 0, "{}", attached.stderr());
    let answer: Value = serde_json::from_str(&attached.seen.join("")).expect("up --json");
    assert_eq!(answer["status"], "attached", "{answer}");
    let log = answer["log"].as_str().expect("a log path");
    assert!(
        Path::new(log).is_absolute(),
        "the log path is absolute: {log}"
    );
    let supervisor = Proc::pin(
        Pid::new(answer["supervisor_pid"].as_i64().expect("a pid") as i32).expect("a pid"),
    );
    kill_and_reap(&mut one);
    kill_and_reap(&mut two);
    supervisor.wait_gone("the supervisor, once both owners are gone");
}

// 4. Owners that can never die.

#[cfg(unix)] // Unix only: init and kernel threads
/// A kernel thread visible in /proc (kthreadd is PID 2 on most hosts).
fn a_kernel_thread() -> Pid {
    sys::all_processes()
        .into_iter()
        .map(|p| p.pid)
        .find(|&pid| sys::is_kernel_thread(pid))
        .expect("this test needs a kernel thread visible in /proc (not a PID namespace)")
}

#[cfg(unix)] // Unix only: init and kernel threads
#[test]
fn init_and_kernel_threads_are_refused_as_owners_with_exit_125() {
    let case = Case::new();
    let kthread = a_kernel_thread().to_string();
    for (pid, reason) in [("1", "init"), (kthread.as_str(), "a kernel thread")] {
        let why = format!("owner pid {pid} can never exit ({reason})");
        case.refused(case.launch(None, &["--owner-pid", pid]), 125, &[&why]);
        let run = case.refused(
            case.launch(Some("up"), &["--json", "--owner-pid", pid]),
            125,
            &[],
        );
        let reply: Value = serde_json::from_str(&run.seen.join("\n")).expect("one JSON object");
        assert_eq!(reply["status"], "error", "{reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| e.contains(&why)),
            "{reply}"
        );
    }
    // Among other, good owners too, and from the environment.
    let session = owner();
    let both = format!("{},1", session.pinned.pid);
    case.refused(
        case.launch(None, &[]).env("OCWRAP_OWNER_PID", &both),
        125,
        &["owner pid 1 can never exit (init)"],
    );
}

#[cfg(unix)] // Unix only: exec, which keeps the PID
#[test]
fn ocwrap_itself_is_refused_as_its_own_owner() {
    let case = Case::new();
    // `exec` keeps the shell's PID, so `$$` is ocwrap's own PID.
    let script = r#"exec "$0" --state-dir "$1" --port "$2" --owner-pid $$ -- "$3" tree"#;
    let run = case.refused(
        Launch::program("sh").args([
            "-c",
            script,
            ocwrap_bin(),
            case.dir(),
            &case.port(),
            fixture_bin(),
        ]),
        125,
        &["can never exit (ocwrap itself)"],
    );
    let pid = run.pinned.pid;
    assert!(
        run.stderr().contains(&format!("owner pid {pid} ")),
        "names its own pid {pid}: {:?}",
        run.stderr()
    );
}
