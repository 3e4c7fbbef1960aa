//! Test support: launch ocwrap (or the fixture) with a small builder, read what the
//! fixture says line by line, and wait for processes to appear or vanish — always
//! on an event (a line, a pidfd) with a deadline and a message, never on a sleep.
//!
//! Every process a test learns about is pinned when it is learned (a pidfd on
//! Linux, a process handle on Windows), so checks and the clean-up on drop can
//! never hit a recycled PID.
//!
//! One harness for every platform: what differs is reached through the platform
//! seam (`ocwrap::sys`, its `fixture` helpers among it), and the few helpers that
//! only Unix has (process groups, other users, SIGSTOP, FIFOs, `/proc`) are marked
//! `cfg(unix)`, as the scenarios that use them are.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ocwrap::process::Pid;
use ocwrap::sys::{self, AsWaitable, PidFd};

#[cfg(unix)]
mod asleep;
#[cfg(unix)]
pub use asleep::*;

/// How long any expected event may take. Generous: CI machines are shared, and
/// under Wine every process start goes through the wineserver.
pub const DEADLINE: Duration = Duration::from_secs(if cfg!(windows) { 30 } else { 20 });

/// How late after its time a timed step (the end of `--grace`, of `--linger`) may
/// be seen to have happened: the supervisor's wake-up, its signal, the kernel's
/// kill and this test's own wake-up, on a shared and loaded machine. Far more than
/// they take (milliseconds), far less than the durations a broken timer would give
/// instead (the default, twice the value, the two added).
pub const LATE: Duration = Duration::from_secs(3);

pub fn ocwrap_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| copied("ocwrap", env!("CARGO_BIN_EXE_ocwrap")))
}

pub fn fixture_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| copied("ocwrap-fixture", env!("CARGO_BIN_EXE_ocwrap-fixture")))
}

/// The binary `name` in `$SUITE_BIN_DIR` where that is set (shell/test.sh copies
/// the built binaries there to run tests as another user, who may not reach the
/// build directory), else the one cargo built (`built`).
fn copied(name: &str, built: &str) -> String {
    match std::env::var_os("SUITE_BIN_DIR") {
        Some(dir) => Path::new(&dir).join(name).to_string_lossy().into_owned(),
        None => built.to_string(),
    }
}

/// A process pinned by a pidfd (Windows: a process handle).
#[derive(Debug)]
pub struct Proc {
    pub pid: Pid,
    fd: Option<PidFd>,
}

impl Proc {
    /// Pins `pid`, a process that runs (or is a zombie nobody has reaped) now: a
    /// child of this test not yet waited for, or one a live supervisor has just
    /// named while its owners live. Any failure fails the test: a process the
    /// harness cannot watch must never count as gone, or every later
    /// [`Proc::wait_gone`] and [`assert_all_gone`] on it would pass whatever became
    /// of it (a misparsed PID, `EMFILE`, a PID of another PID namespace).
    pub fn pin(pid: Pid) -> Proc {
        match PidFd::open(pid) {
            Ok(fd) => Proc { pid, fd: Some(fd) },
            Err(e) => panic!("cannot pin pid {pid} with a pidfd: {e}"),
        }
    }

    /// Pins `pid`, named by an announcement that may be older than the process: a
    /// fixture's line (each process prints its own `getpid()`, or its parent's) or
    /// a supervisor's reply, read after the fact. If it cannot be opened because no
    /// process has that PID (`ESRCH`; Windows: `ERROR_INVALID_PARAMETER`), it has
    /// already exited and been reaped (Windows: lost its last handle): it existed
    /// when it announced itself, in this PID namespace (nothing here makes
    /// another), so it counts as gone, truly. Any other failure fails the test, as
    /// in [`Proc::pin`].
    pub fn pin_announced(pid: Pid) -> Proc {
        match PidFd::open(pid) {
            Ok(fd) => Proc { pid, fd: Some(fd) },
            Err(e) if sys::fixture::is_no_such_process(pid, &e) => Proc { pid, fd: None },
            Err(e) => panic!("cannot pin announced pid {pid} with a pidfd: {e}"),
        }
    }

    fn exited_within(&self, wait: Duration) -> bool {
        match &self.fd {
            None => true,
            Some(fd) => sys::poll_readable(&[fd.waitable()], Some(wait))
                .expect("poll on a pidfd")
                .first()
                .copied()
                .unwrap_or(false),
        }
    }

    /// A second handle on the same process. A failed duplication fails the test,
    /// for the reason in [`Proc::pin`].
    fn duplicate(&self) -> Proc {
        Proc {
            pid: self.pid,
            fd: self.fd.as_ref().map(|fd| {
                fd.try_clone().unwrap_or_else(|e| {
                    panic!("cannot duplicate the pidfd of pid {}: {e}", self.pid)
                })
            }),
        }
    }

    pub fn is_running(&self) -> bool {
        !self.exited_within(Duration::ZERO)
    }

    /// Waits until the process has exited; panics after [`DEADLINE`].
    pub fn wait_gone(&self, what: &str) {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if self.exited_within(DEADLINE - start.elapsed()) {
                return;
            }
        }
        panic!("{what} (pid {}) still runs after {DEADLINE:?}", self.pid);
    }

    /// Asserts that the process does *not* exit during `window`.
    pub fn assert_survives(&self, window: Duration, what: &str) {
        assert!(
            !self.exited_within(window),
            "{what} (pid {}) exited within {window:?}, but should still run",
            self.pid
        );
    }

    pub fn signal(&self, signal: sys::Signal) {
        if let Some(fd) = &self.fd {
            let _ = fd.send_signal(signal);
        }
    }

    /// SIGSTOP, which is not in ocwrap's vocabulary: SIGCONT resumes it. Returns
    /// once the process is stopped (`T` in `/proc/PID/stat`): a signal sent is
    /// not yet a signal taken, and the process may run on for a moment.
    #[cfg(unix)]
    pub fn stop(&self) {
        if let Some(fd) = &self.fd {
            sys::fixture::stop_process(fd).expect("send SIGSTOP");
        }
        let pid = self.pid;
        eventually("the process is stopped", || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|r| r.starts_with(" T")))
        });
    }
}

/// This platform's number for `signal` (an exit code of 128 + it means "died of it").
#[cfg(unix)]
pub fn number(signal: sys::Signal) -> i32 {
    sys::signal_number(signal).expect("Unix numbers every signal")
}

/// Builds an ocwrap (or fixture) command line.
pub struct Launch {
    command: Command,
    stderr_set: bool,
}

impl Launch {
    /// `ocwrap ARGS…`; add the server with [`Launch::server`].
    pub fn ocwrap() -> Launch {
        Launch {
            command: Command::new(ocwrap_bin()),
            stderr_set: false,
        }
    }

    /// Any program, e.g. the fixture in `spawn` mode standing in for a session.
    pub fn program(program: impl AsRef<OsStr>) -> Launch {
        Launch {
            command: Command::new(program),
            stderr_set: false,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Launch {
        self.command.arg(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Launch {
        self.command.args(args);
        self
    }

    /// `-- ocwrap-fixture FIXTURE-ARGS…`
    pub fn server(self, fixture_args: &[&str]) -> Launch {
        self.arg("--").arg(fixture_bin()).args(fixture_args)
    }

    /// Unix: `argv[0]` apart from the program (Windows has no such thing).
    pub fn arg0(mut self, name: &str) -> Launch {
        sys::fixture::set_arg0(&mut self.command, name).expect("set argv[0]");
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Launch {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Launch {
        self.command.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Launch {
        self.command.current_dir(dir);
        self
    }

    /// Starts it as the leader of a new process group (a stand-in for an agent's
    /// shell command, whose whole group gets killed on timeout).
    #[cfg(unix)]
    pub fn own_group(mut self) -> Launch {
        use std::os::unix::process::CommandExt;
        self.command.process_group(0);
        self
    }

    /// Runs as another user (the test must be root).
    #[cfg(unix)]
    pub fn uid(mut self, uid: u32) -> Launch {
        use std::os::unix::process::CommandExt;
        self.command.uid(uid).gid(uid);
        self
    }

    pub fn stdin(mut self, stdin: impl Into<Stdio>) -> Launch {
        self.command.stdin(stdin);
        self
    }

    pub fn stderr(mut self, stderr: impl Into<Stdio>) -> Launch {
        self.command.stderr(stderr);
        self.stderr_set = true;
        self
    }

    /// Starts it with stdout (and, unless set, stderr) read on background threads.
    pub fn spawn(mut self) -> Running {
        self.command.stdout(Stdio::piped());
        if !self.stderr_set {
            self.command.stderr(Stdio::piped());
        }
        let mut child = self.command.spawn().expect("spawn the command under test");
        let (tx, lines) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Stderr::default());
        let (eof_tx, stderr_eof) = channel();
        if let Some(mut err) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = err.read(&mut chunk) {
                    sink.text
                        .lock()
                        .expect("stderr buffer")
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                    sink.grew.notify_all();
                }
                let _ = eof_tx.send(());
            });
        }
        let pinned = Proc::pin(Pid::from_u32(child.id()).expect("child pid"));
        Running {
            child,
            pinned,
            lines,
            seen: Vec::new(),
            stderr,
            stderr_eof,
            tracked: Vec::new(),
        }
    }
}

/// What a launched process wrote to stderr so far, and a signal on each write.
#[derive(Default)]
struct Stderr {
    text: Mutex<String>,
    grew: Condvar,
}

/// A launched process, what it has printed so far, and the processes it named.
pub struct Running {
    pub child: Child,
    pub pinned: Proc,
    lines: Receiver<String>,
    pub seen: Vec<String>,
    stderr: Arc<Stderr>,
    stderr_eof: Receiver<()>,
    /// Every process the output announced, pinned when it was announced.
    tracked: Vec<Proc>,
}

impl Running {
    /// Waits for a line starting with `prefix` and returns it.
    pub fn expect_line(&mut self, prefix: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return line.clone();
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.track(&line);
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line starting with {prefix:?} within {DEADLINE:?}; saw {:?}; stderr {:?}",
                    self.seen,
                    self.stderr()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "output ended before a line starting with {prefix:?}; saw {:?}; stderr {:?}",
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    /// Pins every process a fixture line announces, for [`Running::proc`] and for
    /// the clean-up on drop. Pinned at once, so a later PID reuse cannot matter.
    fn track(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(&label) = words.first().filter(|w| ANNOUNCED.contains(w)) else {
            return;
        };
        let pids: Vec<Pid> = words
            .windows(2)
            .filter(|pair| pair[0] == label || pair[0] == "ppid")
            .filter_map(|pair| pair[1].parse::<Pid>().ok())
            .collect();
        // A fixture started by the test itself names the test as its parent.
        for pid in pids.into_iter().filter(|&pid| pid != Pid::current()) {
            if !self.tracked.iter().any(|p| p.pid == pid) {
                self.tracked.push(Proc::pin_announced(pid));
            }
        }
    }

    /// The process announced by the line `LABEL <pid> …`.
    pub fn proc(&mut self, label: &str) -> Proc {
        let line = self.expect_line(&format!("{label} "));
        self.pinned_as(field(&line, label))
    }

    /// Every process announced so far by a `LABEL <pid>` line.
    pub fn all(&mut self, label: &str) -> Vec<Proc> {
        let prefix = format!("{label} ");
        let pids: Vec<Pid> = self
            .seen
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .map(|l| field(l, label))
            .collect();
        pids.into_iter().map(|pid| self.pinned_as(pid)).collect()
    }

    /// Waits for the fixture's `ready` and returns every process of its tree:
    /// the server, its grandchildren and its escapees.
    pub fn tree(&mut self) -> Vec<Proc> {
        self.expect_line("ready");
        let (server, _) = self.server_and_supervisor();
        let mut procs = vec![server];
        procs.extend(self.all("child"));
        procs.extend(self.all("escapee"));
        procs
    }

    /// The `server <pid> ppid <ppid> …` line: (server, its parent = the supervisor).
    pub fn server_and_supervisor(&mut self) -> (Proc, Proc) {
        let line = self.expect_line("server ");
        (
            self.pinned_as(field(&line, "server")),
            self.pinned_as(field(&line, "ppid")),
        )
    }

    /// A second handle on a tracked process: a pidfd duplicated from the one opened
    /// when the process was announced.
    fn pinned_as(&self, pid: Pid) -> Proc {
        self.tracked
            .iter()
            .find(|p| p.pid == pid)
            .map(Proc::duplicate)
            .unwrap_or_else(|| panic!("pid {pid} was never announced"))
    }

    pub fn stderr(&self) -> String {
        self.stderr.text.lock().expect("stderr buffer").clone()
    }

    /// Waits until stderr holds `text` (woken by each write to it); panics after
    /// [`DEADLINE`].
    pub fn expect_stderr(&self, text: &str) {
        let held = self.stderr.text.lock().expect("stderr buffer");
        let (held, waited) = self
            .stderr
            .grew
            .wait_timeout_while(held, DEADLINE, |seen| !seen.contains(text))
            .expect("stderr buffer");
        assert!(
            !waited.timed_out(),
            "{text:?} not on stderr within {DEADLINE:?}; stderr {held:?}"
        );
    }

    /// Waits for the launched process to exit; panics after [`DEADLINE`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.pinned.wait_gone("the launched process");
        let status = self.child.wait().expect("wait for the launched process");
        // Let the reader threads drain what was written before the exit. A
        // descendant that outlives the process may hold the pipes open, so this is
        // bounded rather than a wait for end-of-file.
        let drained_until = Instant::now() + Duration::from_secs(2);
        let left = || drained_until.saturating_duration_since(Instant::now());
        while let Ok(line) = self.lines.recv_timeout(left()) {
            self.track(&line);
            self.seen.push(line);
        }
        let _ = self.stderr_eof.recv_timeout(left());
        status
    }

    /// Waits until every process holding the write end of this process's stdout
    /// has exited (end of file); panics after [`DEADLINE`]. A fixture tree whose
    /// processes all inherit stdout is wholly gone when this returns.
    pub fn wait_stdout_closed(&mut self, what: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.track(&line);
                    self.seen.push(line);
                }
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{what}: stdout still open after {DEADLINE:?}")
                }
            }
        }
    }

    /// The same for stderr.
    pub fn wait_stderr_closed(&self, what: &str) {
        // Disconnected: the reader already reported the end (to `wait_exit`).
        if let Err(RecvTimeoutError::Timeout) = self.stderr_eof.recv_timeout(DEADLINE) {
            panic!("{what}: stderr still open after {DEADLINE:?}");
        }
    }

    /// Waits until `count` lines starting with `prefix` have been seen; returns them.
    pub fn expect_lines(&mut self, prefix: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let found: Vec<String> = self
                .seen
                .iter()
                .filter(|l| l.starts_with(prefix))
                .cloned()
                .collect();
            if found.len() >= count {
                return found;
            }
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.track(&line);
                    self.seen.push(line);
                }
                Err(_) => panic!(
                    "{count} lines starting with {prefix:?} not within {DEADLINE:?}; saw {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for exit and returns the code, failing on death by signal.
    pub fn exit_code(&mut self) -> i32 {
        let status = self.wait_exit();
        status
            .code()
            .unwrap_or_else(|| panic!("ended by a signal: {status:?}; stderr {:?}", self.stderr()))
    }
}

/// The labels of fixture lines that announce a process.
const ANNOUNCED: [&str; 11] = [
    "server",
    "broker",
    "child",
    "escapee",
    "transient",
    "spawner",
    "sleeper",
    "late",
    "leaver",
    "headless",
    "daemon",
];

impl Drop for Running {
    /// SIGKILLs whatever this test started and left running: the launched process
    /// and every process its output announced, through the pidfds pinned then.
    /// Then, once they are gone, removes the empty cgroup that a SIGKILLed ocwrap
    /// leaves behind, so that no test leaves a cgroup.
    fn drop(&mut self) {
        for proc in &self.tracked {
            proc.signal(sys::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + DEADLINE;
        for proc in &self.tracked {
            let _ = proc.exited_within(deadline.saturating_duration_since(Instant::now()));
        }
        ocwrap::contain::remove_dead_cgroups();
    }
}

/// The word after `label` in a `label <word> …` line.
pub fn word<'a>(line: &'a str, label: &str) -> &'a str {
    let mut words = line.split_whitespace();
    words
        .by_ref()
        .find(|w| *w == label)
        .and_then(|_| words.next())
        .unwrap_or_else(|| panic!("no '{label} <word>' in {line:?}"))
}

/// The PID after `label` in a `label <pid> …` line.
pub fn field(line: &str, label: &str) -> Pid {
    word(line, label)
        .parse::<Pid>()
        .unwrap_or_else(|_| panic!("no '{label} <pid>' in {line:?}"))
}

/// Every command that opens `dir` refuses it with 125 and says `problem`.
pub fn assert_state_dir_refused(dir: &str, problem: &str) {
    let mut run = Launch::ocwrap()
        .args(["--state-dir", dir, "--name", "x"])
        .server(&["tree"])
        .spawn();
    assert_eq!(run.exit_code(), 125, "{dir}: {}", run.stderr());
    assert!(run.stderr().contains(problem), "{dir}: {:?}", run.stderr());
    assert!(run.seen.is_empty(), "{dir}: nothing starts: {:?}", run.seen);
    for command in [
        &["status"][..],
        &["gc"],
        &["stop", "--all"],
        &["release", "--name", "x"],
    ] {
        let (code, _, err) = ocwrap_once(&[command, &["--state-dir", dir]].concat());
        assert_eq!(code, 125, "{command:?} {dir}: {err}");
        assert!(err.contains(problem), "{command:?} {dir}: {err:?}");
    }
}

/// Kills the owner; the whole tree must go and ocwrap exit 0 (its own rule).
pub fn owner_dies_tree_goes(session: &mut Running, run: &mut Running, procs: &[Proc]) {
    kill_and_reap(session);
    assert_all_gone(procs);
    assert_eq!(
        run.exit_code(),
        0,
        "torn down by our own rule: {}",
        run.stderr()
    );
}

pub fn assert_all_gone(procs: &[Proc]) {
    for p in procs {
        p.wait_gone("a process of the server's tree");
    }
}

/// Waits until the first of `procs` exits and returns when that was seen: the
/// pidfds are waited on together, so the instant is that of the earliest exit (or
/// a little after it, never before). Panics after [`DEADLINE`]. For a lower bound
/// on how long all of them ran: none exited before the instant returned.
pub fn first_exit(procs: &[Proc], what: &str) -> Instant {
    let deadline = Instant::now() + DEADLINE;
    // One announced but gone before it could be pinned exited before now.
    if procs.iter().any(|p| p.fd.is_none()) {
        return Instant::now();
    }
    let fds: Vec<_> = procs
        .iter()
        .filter_map(|p| p.fd.as_ref().map(AsWaitable::waitable))
        .collect();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{what}: none exited within {DEADLINE:?}");
        // An interrupted poll marks none and goes round again.
        let exited = sys::poll_readable(&fds, Some(left)).expect("poll on pidfds");
        if exited.contains(&true) {
            return Instant::now();
        }
    }
}

/// A long-lived process that stands for a session: the fixture in `sleep` mode.
pub fn owner() -> Running {
    let mut owner = Launch::program(fixture_bin()).arg("sleep").spawn();
    owner.expect_line("sleeper ");
    owner
}

/// Kills a launched process with SIGKILL and reaps it.
pub fn kill_and_reap(running: &mut Running) {
    running.pinned.signal(sys::SIGKILL);
    running.wait_exit();
}

/// A private directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ocwrap-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        let mut f = std::fs::File::create(&path).expect("create temp file");
        f.write_all(contents.as_bytes()).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes a FIFO at `path`.
#[cfg(unix)]
pub fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// What a test plants under a state-dir name where ocwrap keeps a file of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Junk {
    EmptyDir,
    /// A directory with a file `inside` in it, saying `kept`.
    FullDir,
    Fifo,
    /// A symlink to a file outside the state dir.
    Symlink,
    Socket,
    /// A regular file over every bound ocwrap reads a state-dir file within.
    Oversized,
}

impl Junk {
    /// Every kind this platform can plant. Windows has no FIFOs or Unix sockets
    /// in a directory, and its symlinks need a privilege a user does not have.
    #[cfg(unix)]
    pub const ALL: [Junk; 6] = [
        Junk::EmptyDir,
        Junk::FullDir,
        Junk::Fifo,
        Junk::Symlink,
        Junk::Socket,
        Junk::Oversized,
    ];
    #[cfg(windows)]
    pub const ALL: [Junk; 3] = [Junk::EmptyDir, Junk::FullDir, Junk::Oversized];

    /// A word for it, to make names of: `emptydir`, `fifo`, ….
    pub fn word(self) -> &'static str {
        match self {
            Junk::EmptyDir => "emptydir",
            Junk::FullDir => "fulldir",
            Junk::Fifo => "fifo",
            Junk::Symlink => "symlink",
            Junk::Socket => "socket",
            Junk::Oversized => "oversized",
        }
    }

    /// Plants it at `path`; a symlink points at `target`.
    pub fn plant(self, path: &Path, target: &Path) {
        match self {
            Junk::EmptyDir => std::fs::create_dir(path).expect("make a directory"),
            Junk::FullDir => {
                std::fs::create_dir(path).expect("make a directory");
                std::fs::write(path.join("inside"), "kept").expect("write into it");
            }
            #[cfg(unix)]
            Junk::Fifo => mkfifo(path),
            #[cfg(unix)]
            Junk::Symlink => std::os::unix::fs::symlink(target, path).expect("make a symlink"),
            #[cfg(unix)]
            Junk::Socket => {
                std::os::unix::net::UnixListener::bind(path).expect("bind a socket");
            }
            #[cfg(windows)]
            Junk::Fifo | Junk::Symlink | Junk::Socket => {
                panic!("{self:?} cannot be planted here (not in Junk::ALL); target {target:?}")
            }
            Junk::Oversized => std::fs::File::create(path)
                .and_then(|f| f.set_len(2 << 20))
                .expect("make a 2 MiB file"),
        }
    }
}

/// A TCP port on 127.0.0.1 that nobody listens on, and that no other test takes
/// while this test process runs: not another test of this run, not a concurrent
/// run of this suite, not an outgoing connection or a `:0` bind of anyone.
///
/// The tests need the port unbound until their server binds it itself (a server
/// that listens late or never, a probe that must find nothing), so no listener can
/// be held for them and handed over. Binding `:0` and dropping the listener, as
/// this did before, is a time-of-check race: the kernel gives the port out again,
/// to the next `:0` bind or outgoing connection on the host, before the server
/// binds it. So a port is taken instead
/// - outside the kernel's ephemeral range, which is all `:0` binds and outgoing
///   connections are given: from [`PORT_BLOCKS`], in order, with that range left
///   out;
/// - never twice in a run (an atomic counter walks the blocks);
/// - only while no concurrent run holds it: each port is claimed by an exclusive
///   lock on a file of its own in the temp dir, held until this process exits;
/// - only if nothing listens on it now (a bind succeeds).
///
/// What is left is a program outside this suite that binds this very port by its
/// number, which would collide with a fixed port as much.
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    // The claims, held (and so the ports reserved) until the process exits.
    static CLAIMS: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());
    let ephemeral = ephemeral_ports();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = PORT_BLOCKS
            .into_iter()
            .flatten()
            .filter(|port| !ephemeral.contains(port))
            .nth(n)
            .unwrap_or_else(|| {
                panic!("no port of {PORT_BLOCKS:?} outside the ephemeral {ephemeral:?} is left")
            });
        let Some(claim) = claim_port(port) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            CLAIMS.lock().expect("the port claims").push(claim);
            return port;
        }
    }
}

/// Where [`free_port`] takes ports from, in this order: a block below the Linux
/// default ephemeral range (32768-60999) first, then the rest of the unprivileged
/// ports. Whatever of them lies in this host's ephemeral range is skipped.
pub const PORT_BLOCKS: [std::ops::RangeInclusive<u16>; 3] =
    [20000..=32767, 32768..=65535, 1024..=19999];

/// The ports the kernel gives `:0` binds and outgoing connections, from
/// `/proc/sys/net/ipv4/ip_local_port_range`. Where that cannot be read (macOS,
/// Windows), both usual ranges at once: the IANA dynamic range (49152-65535: macOS,
/// Windows) and Linux's default (32768-60999), which Wine's Windows programs are
/// given, as the Linux host gives them out.
fn ephemeral_ports() -> std::ops::RangeInclusive<u16> {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let bounds: Vec<u16> = text
        .split_whitespace()
        .map(|w| w.parse().expect("a port number in ip_local_port_range"))
        .collect();
    match bounds.as_slice() {
        [low, high] => *low..=*high,
        [] => 32768..=65535,
        _ => panic!("ip_local_port_range is not two ports: {text:?}"),
    }
}

/// An exclusive lock on `ocwrap-test-port-PORT.lock` in the temp dir, or `None`
/// when another process holds it (or another user's file cannot be opened: its
/// owner may hold it). The file is opened read-only when it exists (a lock needs
/// no write access, and another user's file in the sticky temp dir cannot be
/// opened with `O_CREAT`), so runs as root and as other users share the claims:
/// it is made readable by all where the umask allows (the usual 022 does; under
/// a stricter one, another user skips the port, as one held).
pub fn claim_port(port: u16) -> Option<std::fs::File> {
    use std::io::ErrorKind;
    let path = std::env::temp_dir().join(format!("ocwrap-test-port-{port}.lock"));
    let opened = match std::fs::File::open(&path) {
        Err(e) if e.kind() == ErrorKind::NotFound => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .or_else(|e| match e.kind() {
                ErrorKind::AlreadyExists => std::fs::File::open(&path),
                _ => Err(e),
            }),
        other => other,
    };
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => return None,
        Err(e) => panic!("open {}: {e}", path.display()),
    };
    match file.try_lock() {
        Ok(()) => Some(file),
        Err(std::fs::TryLockError::WouldBlock) => None,
        Err(std::fs::TryLockError::Error(e)) => panic!("lock {}: {e}", path.display()),
    }
}

/// Waits until `condition` holds, re-checking it every 10 ms; panics with `what`
/// after [`DEADLINE`]. Only for state that no outside event announces (a record's
/// `state` field, ocwrap's internal reaping); everything else waits on a pidfd, an
/// output line or a control-socket reply.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs an ocwrap command to its end: (exit code, stdout, stderr).
pub fn ocwrap_once(args: &[&str]) -> (i32, String, String) {
    let mut run = Launch::ocwrap().args(args).spawn();
    let code = run.exit_code();
    (code, run.seen.join("\n"), run.stderr())
}

/// `ocwrap status --json` in `state_dir`, parsed.
pub fn status_json(state_dir: &Path) -> serde_json::Value {
    let dir = state_dir.to_str().expect("utf-8 path");
    let (_, out, err) = ocwrap_once(&["status", "--json", "--state-dir", dir]);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {out:?} {err:?}"))
}

/// Zombie children of `parent` right now.
#[cfg(unix)]
pub fn zombie_children(parent: Pid) -> Vec<Pid> {
    sys::all_processes()
        .into_iter()
        .filter(|p| p.ppid == Some(parent) && !p.is_live())
        .map(|p| p.pid)
        .collect()
}

/// A private state dir inside a temp dir (ocwrap creates it), and the commands
/// and checks the tests run against it.
pub struct State {
    _tmp: TempDir,
    pub dir: PathBuf,
}

impl Drop for State {
    /// Whatever a test left running in its state dir is stopped, and the dir
    /// removed once its supervisors have exited: Windows removes no directory
    /// while a file in it is open, and a supervisor that released its lock (all
    /// `stop --wait` waits for) may not have exited yet. So the live supervisors
    /// are pinned first (from `status --json`, before they are asked to stop).
    /// Clean-up only: nothing is asserted, and a supervisor still running after
    /// the deadline is said on stderr.
    fn drop(&mut self) {
        if !self.dir.is_dir() {
            return;
        }
        let supervisors: Vec<Proc> = self
            .live_supervisors()
            .into_iter()
            .map(Proc::pin_announced)
            .collect();
        if supervisors.is_empty() {
            return;
        }
        let _ = ocwrap_once(&["stop", "--all", "--wait", "--state-dir", self.arg()]);
        for supervisor in &supervisors {
            if !supervisor.exited_within(DEADLINE) {
                eprintln!(
                    "supervisor {} still runs {DEADLINE:?} after stop --wait",
                    supervisor.pid
                );
            }
        }
    }
}

impl State {
    pub fn new() -> State {
        let tmp = TempDir::new();
        let dir = tmp.path().join("state");
        State { _tmp: tmp, dir }
    }

    pub fn arg(&self) -> &str {
        self.dir.to_str().expect("utf-8 path")
    }

    /// The temp dir the state dir is in (for files of the test's own).
    pub fn tmp(&self) -> &TempDir {
        &self._tmp
    }

    /// `ocwrap run --state-dir D ARGS… -- fixture FIXTURE…`
    pub fn run(&self, args: &[&str], fixture: &[&str]) -> Running {
        Launch::ocwrap()
            .args(["--state-dir", self.arg()])
            .args(args)
            .server(fixture)
            .spawn()
    }

    /// `ocwrap COMMAND --state-dir D ARGS…` to its end: (exit code, stdout, stderr).
    pub fn cmd(&self, command: &str, args: &[&str]) -> (i32, String, String) {
        let mut all = vec![command, "--state-dir", self.arg()];
        all.extend_from_slice(args);
        ocwrap_once(&all)
    }

    pub fn record(&self, stem: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join(format!("{stem}.json")))
            .expect("read the record");
        serde_json::from_str(&text).expect("the record is JSON")
    }

    /// The record if there is one now (a supervisor writes it first once ready).
    pub fn record_now(&self, stem: &str) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.join(format!("{stem}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn has_record(&self, stem: &str) -> bool {
        self.dir.join(format!("{stem}.json")).exists()
    }

    /// The status entry for `stem`, if listed.
    pub fn entry(&self, stem: &str) -> Option<serde_json::Value> {
        status_json(&self.dir)["supervisors"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == stem)
            .cloned()
    }

    /// Whether `status --json` lists `stem` as live.
    pub fn is_live(&self, stem: &str) -> bool {
        self.entry(stem).is_some_and(|e| e["live"] == true)
    }

    /// Asks the supervisor of `stem` for its status over the control socket and
    /// returns the reply. The socket is bound before the server is spawned, and
    /// requests are answered by the event loop, which starts once the server has:
    /// an event to wait on, not a poll. (Without `--port` the server is ready at
    /// once, so its record is written before the loop answers.)
    pub fn served(&self, stem: &str) -> serde_json::Value {
        let reply = raw_request(&self.socket(stem), b"{\"op\":\"status\"}\n");
        assert_eq!(reply["ok"], true, "{stem} answers its status: {reply}");
        reply
    }

    pub fn socket(&self, stem: &str) -> PathBuf {
        self.dir.join(format!("{stem}.sock"))
    }

    /// The supervisor PIDs that the records of live entries name.
    fn live_supervisors(&self) -> Vec<Pid> {
        let dir = self.arg();
        let (_, out, _) = ocwrap_once(&["status", "--json", "--state-dir", dir]);
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&out) else {
            return Vec::new();
        };
        json["supervisors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["live"] == true)
            .filter_map(|entry| entry["record"]["supervisor"]["pid"].as_i64())
            .filter_map(|pid| Pid::new(i32::try_from(pid).ok()?))
            .collect()
    }

    /// Which of `<stem>.json`, `.lock` and `.sock` exist.
    pub fn files(&self, stem: &str) -> Vec<String> {
        ["json", "lock", "sock"]
            .iter()
            .map(|ext| format!("{stem}.{ext}"))
            .filter(|name| std::fs::symlink_metadata(self.dir.join(name)).is_ok())
            .collect()
    }
}

/// An `attach` request line for `pids`, each named by its identity as this
/// process sees it now (PID and start time), from this process as its client.
pub fn attach_line(pids: &[Pid]) -> Vec<u8> {
    let owners: Vec<serde_json::Value> = pids
        .iter()
        .map(|&pid| {
            let start = sys::proc_info(pid).map_or(0, |info| info.start.0);
            serde_json::json!({ "pid": pid.get(), "start": start })
        })
        .collect();
    let request = serde_json::json!({
        "op": "attach",
        "owners": owners,
        "client": std::process::id(),
    });
    let mut line = serde_json::to_vec(&request).expect("a request line");
    line.push(b'\n');
    line
}

/// A raw client of a supervisor's control socket (Windows: the pipe its `.sock`
/// file names), for tests that hold connections open, send too little or too
/// much, or never read: every wait is bounded by [`DEADLINE`].
pub struct Client(sys::ControlStream);

impl Client {
    pub fn connect(socket: &Path) -> std::io::Result<Client> {
        sys::ControlStream::connect(socket).map(Client)
    }

    /// Writes all of `bytes`, waiting for room at most [`DEADLINE`].
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all_until(bytes, Instant::now() + DEADLINE)
    }

    /// The next line the supervisor sends (its newline kept), or what came before
    /// the end of the stream; panics when nothing ends it within [`DEADLINE`].
    pub fn line(&mut self) -> String {
        let line = self
            .0
            .read_line_until(1 << 20, Instant::now() + DEADLINE)
            .expect("a reply line within the deadline");
        String::from_utf8_lossy(&line).into_owned()
    }

    /// Everything until the supervisor closes the connection; panics when it does
    /// not within [`DEADLINE`].
    pub fn until_closed(&mut self) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut all = String::new();
        loop {
            let chunk = self
                .0
                .read_line_until(1 << 20, deadline)
                .expect("the end of the stream within the deadline");
            if chunk.is_empty() {
                return all;
            }
            all.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// One request over a control socket (Windows: the pipe its `.sock` file names),
/// as raw bytes; the parsed reply line.
pub fn raw_request(socket: &Path, bytes: &[u8]) -> serde_json::Value {
    let mut stream = sys::ControlStream::connect(socket).expect("connect to the control socket");
    let deadline = Instant::now() + DEADLINE;
    // The supervisor may refuse before reading all of an oversize message.
    let _ = stream.write_all_until(bytes, deadline);
    let reply = stream
        .read_line_until(1 << 20, deadline)
        .expect("read the reply");
    let reply = String::from_utf8_lossy(&reply);
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {reply:?}"))
}
