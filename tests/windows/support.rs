//! Test support for the Windows suite: launch ocwrap (or the fixture), read what
//! the fixture says line by line, and wait for processes to vanish — always on an
//! event (a line, a process handle) with a deadline and a message, never on a
//! sleep. Every process a test learns about is pinned by a handle when it is
//! learned, so checks and the clean-up on drop can never hit a reused PID.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ocwrap::process::Pid;
use ocwrap::sys::{self, AsWaitable, PidFd};
use windows_sys::Win32::Foundation::ERROR_INVALID_PARAMETER;

/// How long any expected event may take. Generous: Wine starts processes slowly.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn ocwrap_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ocwrap")
}

pub fn fixture_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ocwrap-fixture")
}

/// `ocwrap ARGS…`.
pub fn ocwrap(args: &[&str]) -> Command {
    let mut command = Command::new(ocwrap_bin());
    command.args(args);
    command
}

/// `ocwrap-fixture ARGS…`.
pub fn fixture(args: &[&str]) -> Command {
    let mut command = Command::new(fixture_bin());
    command.args(args);
    command
}

/// A process pinned by its handle.
#[derive(Debug)]
pub struct Proc {
    pub pid: Pid,
    handle: Option<PidFd>,
}

impl Proc {
    /// Pins `pid`, a process that runs now (or has exited with a handle to it still
    /// open). Any failure fails the test: a process the harness cannot watch must
    /// never count as gone, or every later [`Proc::wait_gone`] on it would pass
    /// whatever became of it (a misparsed PID, a process of another user).
    pub fn pin(pid: Pid) -> Proc {
        match PidFd::open(pid) {
            Ok(handle) => Proc {
                pid,
                handle: Some(handle),
            },
            Err(e) => panic!("cannot open pid {pid}: {e}"),
        }
    }

    /// Pins `pid`, named by an announcement that may be older than the process
    /// (each fixture prints its own PID). If no process has that PID, OpenProcess
    /// fails with `ERROR_INVALID_PARAMETER`: the process existed when it announced
    /// itself, and has exited and lost its last handle since, so it counts as gone,
    /// truly. Any other failure fails the test, as in [`Proc::pin`].
    pub fn pin_announced(pid: Pid) -> Proc {
        match PidFd::open(pid) {
            Ok(handle) => Proc {
                pid,
                handle: Some(handle),
            },
            Err(e) if e.raw_os_error() == Some(ERROR_INVALID_PARAMETER as i32) => {
                Proc { pid, handle: None }
            }
            Err(e) => panic!("cannot open announced pid {pid}: {e}"),
        }
    }

    fn exited_within(&self, wait: Duration) -> bool {
        match &self.handle {
            None => true,
            Some(handle) => sys::poll_readable(&[handle.waitable()], Some(wait))
                .expect("wait on a process handle")
                .first()
                .copied()
                .unwrap_or(false),
        }
    }

    pub fn is_running(&self) -> bool {
        !self.exited_within(Duration::ZERO)
    }

    /// Waits until the process has exited; panics after [`DEADLINE`].
    pub fn wait_gone(&self, what: &str) {
        assert!(
            self.exited_within(DEADLINE),
            "{what} (pid {}) still runs after {DEADLINE:?}",
            self.pid
        );
    }
}

impl Drop for Proc {
    /// Whatever a failed test left running is killed (through the handle: only
    /// that process).
    fn drop(&mut self) {
        if let Some(handle) = &self.handle
            && self.is_running()
        {
            let _ = handle.send_signal(sys::SIGKILL);
        }
    }
}

/// A state dir of the test's own, under the temp dir. On drop, whatever still runs
/// there is stopped and the dir removed.
pub struct StateDir(PathBuf);

impl StateDir {
    pub fn new(label: &str) -> StateDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ocwrap-w{}-{}-{label}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        StateDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp dir")
    }
}

impl Drop for StateDir {
    /// `stop --wait` returns once every supervisor has released its lock, and
    /// Windows removes no directory while a file in it is open: a supervisor that
    /// released its lock may not have exited yet. So the live supervisors are
    /// pinned first (from `status --json`, before they are asked to stop), and the
    /// dir is removed once each of them has exited. Clean-up only: nothing is
    /// asserted, and what cannot be removed is said on stderr.
    fn drop(&mut self) {
        if !self.0.exists() {
            return;
        }
        let supervisors: Vec<Proc> = self
            .live_supervisors()
            .into_iter()
            .map(Proc::pin_announced)
            .collect();
        let _ = output(ocwrap(&[
            "stop",
            "--all",
            "--wait",
            "--state-dir",
            self.arg(),
        ]));
        for supervisor in &supervisors {
            if !supervisor.exited_within(DEADLINE) {
                eprintln!(
                    "supervisor {} still runs {DEADLINE:?} after stop --wait",
                    supervisor.pid
                );
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("cannot remove {}: {e}", self.0.display());
        }
    }
}

impl StateDir {
    /// The supervisor PIDs that the records of live entries name.
    fn live_supervisors(&self) -> Vec<Pid> {
        let status = output(ocwrap(&["status", "--json", "--state-dir", self.arg()]));
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&status.stdout) else {
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
}

/// A process under test whose stdout is read line by line and whose stderr is kept.
pub struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_eof: Receiver<()>,
}

impl Running {
    pub fn spawn(mut command: Command) -> Running {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn the command under test");
        let (tx, lines) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut err = child.stderr.take().expect("piped stderr");
        let (eof, stderr_eof) = channel();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut chunk) {
                sink.lock()
                    .expect("stderr buffer")
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
            let _ = eof.send(());
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            stderr_eof,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_u32(self.child.id()).expect("a child has a PID")
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// Waits for a line starting with `prefix` and returns the rest of it.
    pub fn expect(&mut self, prefix: &str) -> String {
        let give_up = Instant::now() + DEADLINE;
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_string();
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => panic!(
                    "no line starting with {prefix:?} within {DEADLINE:?}; stdout so far: {:?}; stderr: {}",
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    /// Waits for `PREFIX <pid> …` and pins that process.
    pub fn expect_proc(&mut self, prefix: &str) -> Proc {
        let rest = self.expect(prefix);
        let pid = rest
            .split_whitespace()
            .next()
            .and_then(|w| w.parse::<Pid>().ok())
            .unwrap_or_else(|| panic!("no PID after {prefix:?}: {rest:?}"));
        Proc::pin_announced(pid)
    }

    /// Waits for it to exit; panics after [`DEADLINE`].
    pub fn wait(&mut self) -> ExitStatus {
        let exited = sys::poll_readable(&[self.child.waitable()], Some(DEADLINE))
            .expect("wait on a process handle");
        assert!(
            exited.first().copied().unwrap_or(false),
            "pid {} still runs after {DEADLINE:?}; stderr: {}",
            self.child.id(),
            self.stderr()
        );
        self.child.wait().expect("exit status")
    }

    /// Kills it (`TerminateProcess`).
    pub fn kill(&mut self) {
        self.child.kill().expect("TerminateProcess");
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a short command said and how it ended.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a short command (`stop`, `status`, `up`) to its end, within [`DEADLINE`].
/// Its output pipes must close when it exits: nothing it starts may hold them
/// (see `sys::spawn_detached`).
pub fn output(command: Command) -> Output {
    let mut running = Running::spawn(command);
    let status = running.wait();
    let mut stdout = Vec::new();
    let give_up = Instant::now() + DEADLINE;
    loop {
        match running
            .lines
            .recv_timeout(give_up.saturating_duration_since(Instant::now()))
        {
            Ok(line) => stdout.push(line),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                panic!("stdout still open {DEADLINE:?} after the command exited: a child holds it")
            }
        }
    }
    if running
        .stderr_eof
        .recv_timeout(give_up.saturating_duration_since(Instant::now()))
        .is_err()
    {
        panic!("stderr still open {DEADLINE:?} after the command exited: a child holds it");
    }
    Output {
        status,
        stdout: stdout.join("\n"),
        stderr: running.stderr(),
    }
}

/// A TCP port on 127.0.0.1 that nobody listens on, and that no other test takes
/// while this test process runs (as `free_port` in the Unix harness, which says
/// more). Binding `:0` and dropping the listener is a time-of-check race: the
/// port is given out again, to the next `:0` bind or outgoing connection, before
/// the server binds it. So a port is taken from [`PORT_BLOCK`], below the dynamic
/// ranges `:0` binds and outgoing connections are given (Windows' 49152-65535,
/// and under Wine the Linux host's, 32768-60999 by default); never twice in a run
/// (an atomic counter); only while no concurrent run holds it (an exclusive lock on
/// `ocwrap-test-port-PORT.lock` in the temp dir, held until the process exits);
/// and only if a bind succeeds (nothing listens on it now).
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    // The claims, held (and so the ports reserved) until the process exits.
    static CLAIMS: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = PORT_BLOCK
            .clone()
            .nth(n)
            .unwrap_or_else(|| panic!("no port of {PORT_BLOCK:?} is left"));
        let path = std::env::temp_dir().join(format!("ocwrap-test-port-{port}.lock"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => panic!("lock {}: {e}", path.display()),
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            CLAIMS.lock().expect("the port claims").push(file);
            return port;
        }
    }
}

/// Where [`free_port`] takes ports from: below both dynamic ranges.
pub const PORT_BLOCK: std::ops::RangeInclusive<u16> = 20000..=32767;
