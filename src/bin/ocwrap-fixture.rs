//! Test fixture for ocwrap's tests and benchmarks: a small "server" whose tree and
//! behaviour are chosen by flags, and which says on stdout, one line each, what it
//! did, so a test can wait on events instead of sleeping.
//!
//! ```text
//! ocwrap-fixture tree [--children N] [--escape] [--transient] [--ignore-term]
//!                     [--signals] [--read-stdin] [--exit CODE]
//!     prints `server <pid> ppid <ppid> pgid <pgid> sid <sid>`, then `child <pid>` for each
//!     grandchild, `escapee <pid>` for a descendant that setsid+double-forked out of
//!     the group, `transient <pid>` for one that does so and exits at once,
//!     `stdin <line>|eof`, and `ready`. With --signals it prints `signal <NAME>` for
//!     each signal it gets and exits 128+n on SIGINT/SIGTERM/SIGHUP/SIGQUIT (unless
//!     --ignore-term, which makes the whole tree ignore SIGTERM); its grandchildren
//!     then survive SIGUSR1/SIGUSR2. With --exit it exits
//!     with CODE after `ready`, leaving its grandchildren behind.
//! ocwrap-fixture spawn [--as ARGV0] COMMAND [ARGS...]
//!     prints `spawner <pid>`, runs COMMAND (with argv[0] set to ARGV0) with the same
//!     stdio, and exits with its code: a stand-in for a session that owns a server.
//! ocwrap-fixture sleep
//!     prints `sleeper <pid>` and blocks forever (an owner, a decoy).
//! ocwrap-fixture connect SOCKET LINE
//!     sends LINE to a control socket (on Windows, the pipe its file names) and
//!     prints `reply <answer>`.
//! ocwrap-fixture wide TOTAL [--fanout F] [--sessions]
//!     prints the `server …` line, then builds a tree of TOTAL processes in all
//!     (itself included, F children per process, default 10), each inheriting its
//!     stderr, and prints `ready <TOTAL>` once every one of them runs. With
//!     --sessions every process below the server leads a session of its own, out
//!     of the server's group, where the group's signal cannot reach it.
//! ocwrap-fixture headless
//!     prints `headless <pid>`, then ends its main thread while another one runs on:
//!     the thread-group leader is a zombie, the process alive (an owner).
//! ocwrap-fixture identify PID…
//!     prints `<pid> <start time>` for each PID that runs, `<pid> gone` for the rest.
//! ocwrap-fixture wait-gone PID:START… [--within SECONDS]
//!     waits until none of these processes (each a PID and its start time) runs
//!     any more, at most SECONDS (default 20); prints `gone`, or `alive <pid>` for
//!     each survivor and exits 1. For shell scripts that check a tree from outside.
//! ocwrap-fixture decoys N
//!     forks N idle processes that block every signal (see
//!     `ocwrap::sys::fixture::fork_idle_children`), prints `decoys <N> master <pid>`, and for
//!     each `check` line on stdin prints `disturbed <pid> …` for every one that was
//!     signalled or is gone, then `checked <N>`. They die with it.
//!
//! `tree --listen PORT --daemonize` daemonizes instead of listening itself: a
//! descendant that `setsid`+double-forked out of the group listens on PORT
//! (printing `daemon <pid>` and `listening …`), then the server prints `ready` and
//! exits 0.
//!
//! `tree --leave-cgroup DIR` also starts a descendant that `setsid`+double-forks
//! out of the group and then writes itself into the cgroup DIR (as
//! `systemd-run --scope` or tmux would move it), printing `leaver <pid>`.
//!
//! `tree --late-chain K` (with --signals): on SIGTERM the server first starts a
//! chain of K processes, each in a new session, ignoring SIGTERM, printing
//! `late <pid>` and starting the next; then it exits. A chain that escapes during
//! teardown, bounded by K.
//!
//! `broker SOCKET …` is a broker on a local socket: see `ocwrap-fixture/broker.rs`.
//!
//! `tree --listen PORT` also listens on 127.0.0.1:PORT (printing `listening PORT`)
//! and answers any HTTP request with 200; with `--mute` it accepts and never answers;
//! `--listen-after MS` waits that long first, and the line ends with `at <ns since
//! the epoch>` when the port started accepting (for the readiness benchmark).
//! ```

#[path = "ocwrap-fixture/broker.rs"]
mod broker;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};

use ocwrap::process::Pid;
use ocwrap::sys::{self, AsWaitable, Signal};

const TERMINATING: [Signal; 4] = [sys::SIGINT, sys::SIGTERM, sys::SIGHUP, sys::SIGQUIT];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = args.split_first() else {
        return usage();
    };
    let flags = Flags(rest);
    let has = |flag: &str| flags.has(flag);
    let value = |flag: &str| flags.value(flag);
    match mode.as_str() {
        "tree" => tree(&Options::from(&flags)),
        "wide" => match rest.first().and_then(|n| n.parse::<u32>().ok()) {
            Some(total) if total >= 1 => wide(
                total,
                value("--fanout").unwrap_or(10).max(1),
                has("--sessions"),
            ),
            _ => usage(),
        },
        "node" => match (rest.first(), rest.get(1)) {
            (Some(size), Some(fanout)) => match (size.parse(), fanout.parse()) {
                (Ok(size), Ok(fanout)) => node(size, fanout, has("--sessions")),
                _ => usage(),
            },
            _ => usage(),
        },
        "late" => late(value_at(rest, 0).unwrap_or(1)),
        "broker" => broker::broker(rest),
        "decoys" => decoys(value_at(rest, 0).unwrap_or(0) as usize),
        "identify" => identify(rest),
        "wait-gone" => wait_gone(rest, value("--within").unwrap_or(20)),
        "connect" if rest.len() == 2 => connect(&rest[0], &rest[1]),
        "spawn" if !rest.is_empty() => spawn(rest),
        "sleep" => {
            ignore_term_if(has("--ignore-term"));
            say(format_args!("sleeper {}", std::process::id()));
            block()
        }
        "grandchild" => grandchild(&flags),
        "announce" => {
            say(format_args!("{} {}", label(rest), std::process::id()));
            ExitCode::SUCCESS
        }
        "escape-middle" => escape_middle(rest),
        "headless" => {
            std::thread::spawn(block);
            say(format_args!("headless {}", std::process::id()));
            sys::fixture::exit_this_thread()
        }
        _ => usage(),
    }
}

/// A mode's arguments after the mode: `--flag`, `--flag N`, `--flag TEXT`.
struct Flags<'a>(&'a [String]);

impl Flags<'_> {
    fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }

    fn text(&self, flag: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == flag)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
    }

    fn value(&self, flag: &str) -> Option<u32> {
        self.text(flag).and_then(|v| v.parse::<u32>().ok())
    }
}

impl Options {
    fn from(flags: &Flags<'_>) -> Options {
        Options {
            leave_cgroup: flags.text("--leave-cgroup"),
            daemonize: flags.has("--daemonize"),
            children: flags.value("--children").unwrap_or(0),
            escape: flags.has("--escape"),
            transient: flags.has("--transient"),
            ignore_term: flags.has("--ignore-term"),
            signals: flags.has("--signals"),
            read_stdin: flags.has("--read-stdin"),
            exit: flags.value("--exit"),
            listen: flags.value("--listen").and_then(|p| u16::try_from(p).ok()),
            mute: flags.has("--mute"),
            listen_after: flags
                .value("--listen-after")
                .map(|ms| std::time::Duration::from_millis(u64::from(ms))),
            late_chain: flags.value("--late-chain").unwrap_or(0),
        }
    }
}

/// `grandchild`: a member that waits, perhaps after its parent's exit, perhaps
/// listening, perhaps after leaving the cgroup for another.
fn grandchild(flags: &Flags<'_>) -> ExitCode {
    ignore_term_if(flags.has("--ignore-term"));
    survive_usr_if(flags.has("--survive-usr"));
    if let Some(parent) = flags.value("--after-parent") {
        wait_for_exit(parent);
    }
    if let Some(port) = flags
        .value("--listen-at")
        .and_then(|p| u16::try_from(p).ok())
    {
        say(format_args!("{} {}", label(flags.0), std::process::id()));
        listen(port, false);
        return block();
    }
    if let Some(dir) = flags.text("--into-cgroup") {
        let procs = std::path::Path::new(&dir).join("cgroup.procs");
        if let Err(e) = std::fs::write(procs, std::process::id().to_string()) {
            say(format_args!("leaving the cgroup failed: {e}"));
            return ExitCode::FAILURE;
        }
    }
    say(format_args!("{} {}", label(flags.0), std::process::id()));
    block()
}

struct Options {
    children: u32,
    escape: bool,
    transient: bool,
    ignore_term: bool,
    signals: bool,
    read_stdin: bool,
    exit: Option<u32>,
    listen: Option<u16>,
    mute: bool,
    listen_after: Option<std::time::Duration>,
    late_chain: u32,
    leave_cgroup: Option<String>,
    daemonize: bool,
}

fn tree(opts: &Options) -> ExitCode {
    let me = sys::proc_info(Pid::current());
    let id = |p: Option<Pid>| p.map_or(0, |p| p.get());
    say(format_args!(
        "server {} ppid {} pgid {} sid {}",
        std::process::id(),
        id(sys::parent_pid()),
        id(me.and_then(|p| p.pgid)),
        id(me.and_then(|p| p.sid)),
    ));
    if opts.signals || opts.ignore_term {
        record_signals(opts.ignore_term, opts.late_chain);
    }
    let mut flags: Vec<&str> = Vec::new();
    if opts.ignore_term {
        flags.push("--ignore-term");
    }
    if opts.signals {
        flags.push("--survive-usr");
    }
    for _ in 0..opts.children {
        relay(self_command(&["grandchild", "child"], &flags), 1);
    }
    if opts.escape {
        relay(self_command(&["escape-middle", "escapee"], &flags), 1);
    }
    if let Some(dir) = &opts.leave_cgroup {
        relay(
            self_command(&["escape-middle", "leaver", "--into-cgroup", dir], &flags),
            1,
        );
    }
    if opts.transient {
        relay(
            self_command(&["escape-middle", "transient", "--exit-now"], &flags),
            1,
        );
    }
    if opts.read_stdin {
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => say("stdin eof"),
            Ok(_) => say(format_args!("stdin {}", line.trim_end())),
        }
    }
    if let (Some(port), true) = (opts.listen, opts.daemonize) {
        let port = port.to_string();
        relay(
            self_command(&["escape-middle", "daemon", "--listen-at", &port], &flags),
            2,
        );
        say("ready");
        return ExitCode::SUCCESS;
    }
    if let Some(port) = opts.listen {
        if let Some(delay) = opts.listen_after {
            std::thread::sleep(delay);
        }
        listen(port, opts.mute);
    }
    say("ready");
    match opts.exit {
        Some(code) => ExitCode::from(code as u8),
        None => block(),
    }
}

/// The middle of a double fork: a new session, one child that inherits our stdout,
/// and an immediate exit so the child is orphaned (and reparents to a subreaper).
/// Waits (at most 10 s) until the process `pid` (the middle of a double fork) has
/// exited. A pidfd turns readable only after the kernel has reparented the exiting
/// process's children; a PID already reaped cannot be opened, and is gone too.
fn wait_for_exit(pid: u32) {
    let pid = Pid::from_u32(pid);
    if let Some(pidfd) = pid.and_then(|p| sys::PidFd::open(p).ok()) {
        let _ = sys::poll_readable(
            &[pidfd.waitable()],
            Some(std::time::Duration::from_secs(10)),
        );
    }
}

fn escape_middle(rest: &[String]) -> ExitCode {
    if let Err(e) = sys::fixture::new_session() {
        say(format_args!("setsid failed: {e}"));
        return ExitCode::FAILURE;
    }
    let label = label(rest);
    let mode = if rest.iter().any(|a| a == "--exit-now") {
        "announce"
    } else {
        "grandchild"
    };
    let into = rest
        .iter()
        .position(|a| a == "--into-cgroup")
        .and_then(|i| rest.get(i..i + 2))
        .unwrap_or_default();
    let passed_on = rest
        .iter()
        .filter(|a| *a == "--ignore-term" || *a == "--survive-usr")
        .chain(into)
        .chain(
            rest.iter()
                .position(|a| a == "--listen-at")
                .and_then(|i| rest.get(i..i + 2))
                .unwrap_or_default(),
        )
        .map(String::as_str);
    // The escapee announces itself only once this middle process has exited, so
    // that a test reading `escapee <pid>` finds it already reparented.
    let me = std::process::id().to_string();
    let args: Vec<&str> = [mode, label, "--after-parent", &me]
        .into_iter()
        .chain(passed_on)
        .collect();
    let spawned = Command::new(std::env::current_exe().unwrap_or_else(|_| "ocwrap-fixture".into()))
        .args(&args)
        .stdin(Stdio::null())
        .spawn();
    match spawned {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            say(format_args!("spawn failed: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn self_command(args: &[&str], extra: &[&str]) -> Command {
    let mut command =
        Command::new(std::env::current_exe().unwrap_or_else(|_| "ocwrap-fixture".into()));
    command
        .args(args)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    command
}

/// Starts `command` and copies its first `lines` lines to our stdout, so that our
/// `ready` comes after every descendant has announced itself.
fn relay(mut command: Command, lines: usize) {
    let Ok(mut child) = command.spawn() else {
        say("spawn failed");
        return;
    };
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out)
            .lines()
            .take(lines)
            .map_while(Result::ok)
        {
            say(line);
        }
    }
}

/// Listens on 127.0.0.1:`port` and answers every request `HTTP/1.1 200 OK`, or,
/// when `mute`, accepts connections and never answers (a hung server).
fn listen(port: u16, mute: bool) {
    let listener = match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            say(format_args!("listen failed: {e}"));
            std::process::exit(98);
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    say(format_args!("listening {port} at {}", now.as_nanos()));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            if mute {
                held.push(stream);
                continue;
            }
            std::thread::spawn(move || answer(stream));
        }
    });
}

fn answer(mut stream: std::net::TcpStream) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line == "\r\n" || line == "\n" {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\nconnection: close\r\n\r\n{\"healthy\":true}");
            return;
        }
        line.clear();
    }
}

/// Sends one line to a control socket and prints the one-line answer (a control
/// client that tests can run as another user). The answer is read even if the
/// line could not be sent: a supervisor that refuses a peer answers at once and
/// closes.
fn connect(path: &str, message: &str) -> ExitCode {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut stream = match sys::ControlStream::connect(path.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            say(format_args!("connect failed: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let _ = stream.write_all_until(format!("{message}\n").as_bytes(), deadline);
    let reply = stream
        .read_line_until(1 << 20, deadline)
        .unwrap_or_default();
    say(format_args!(
        "reply {}",
        String::from_utf8_lossy(&reply).trim_end()
    ));
    ExitCode::SUCCESS
}

fn spawn(rest: &[String]) -> ExitCode {
    say(format_args!("spawner {}", std::process::id()));
    let (arg0, command) = match rest {
        [flag, name, command @ ..] if flag == "--as" && !command.is_empty() => {
            (Some(name), command)
        }
        _ => (None, rest),
    };
    let mut child = Command::new(&command[0]);
    child.args(&command[1..]);
    if let Some(name) = arg0
        && let Err(e) = sys::fixture::set_arg0(&mut child, name)
    {
        say(format_args!("cannot set argv[0]: {e}"));
        return ExitCode::from(127);
    }
    match child.status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1) as u8),
        Err(e) => {
            say(format_args!("spawn failed: {e}"));
            ExitCode::from(127)
        }
    }
}

/// Prints each signal received; exits 128+n on a terminating one unless it is
/// SIGTERM and `ignore_term` is set. With `late_chain` > 0, SIGTERM first starts
/// that many late processes (see `late`).
fn record_signals(ignore_term: bool, late_chain: u32) {
    let recorded = ocwrap::signals::FORWARDED;
    let handled = sys::fixture::on_signals(&recorded, move |signal| {
        say(format_args!(
            "signal {}",
            ocwrap::signals::name(signal).trim_start_matches("SIG")
        ));
        if signal == sys::SIGTERM && late_chain > 0 {
            start_late(late_chain);
        }
        if TERMINATING.contains(&signal) && !(ignore_term && signal == sys::SIGTERM) {
            // Every signal has a number where one can arrive here (Unix).
            std::process::exit(sys::signal_number(signal).map_or(1, |n| 128 + n));
        }
    });
    if handled.is_err() {
        say("cannot install signal handlers");
    }
}

/// Catches SIGTERM and carries on, as a server with a slow or broken shutdown does.
fn ignore_term_if(ignore: bool) {
    if ignore && sys::fixture::catch_signal(sys::SIGTERM).is_err() {
        say("cannot install a SIGTERM handler");
    }
}

/// Catches SIGUSR1 and SIGUSR2 (whose default is to terminate), so that a tree whose
/// server records forwarded signals is not killed by them.
fn survive_usr_if(survive: bool) {
    if survive {
        for signal in [sys::SIGUSR1, sys::SIGUSR2] {
            if sys::fixture::catch_signal(signal).is_err() {
                say("cannot install a SIGUSR handler");
            }
        }
    }
}

/// One link of a late chain: a new session, SIGTERM ignored, `late <pid>`, then
/// the next link (`left` - 1 more), then it waits to be killed.
fn late(left: u32) -> ExitCode {
    if let Err(e) = sys::fixture::new_session() {
        say(format_args!("setsid failed: {e}"));
    }
    ignore_term_if(true);
    say(format_args!("late {}", std::process::id()));
    if left > 1 {
        start_late(left - 1);
    }
    block()
}

fn start_late(left: u32) {
    let started = Command::new(std::env::current_exe().unwrap_or_else(|_| "ocwrap-fixture".into()))
        .args(["late", &left.to_string()])
        .stdin(Stdio::null())
        .spawn();
    if let Err(e) = started {
        say(format_args!("spawn failed: {e}"));
    }
}

/// The root of a wide tree: the `server` line, the tree, then `ready <total>`.
fn wide(total: u32, fanout: u32, sessions: bool) -> ExitCode {
    say(format_args!(
        "server {} ppid {}",
        std::process::id(),
        sys::parent_pid().map_or(0, Pid::get)
    ));
    let size = 1 + grow(total - 1, fanout, sessions);
    say(format_args!("ready {size}"));
    block()
}

/// A process of a wide tree heading `size` processes (itself included): says
/// `up <size>` to its parent once all of them run.
fn node(size: u32, fanout: u32, sessions: bool) -> ExitCode {
    if sessions && sys::fixture::new_session().is_err() {
        say("up 0");
        return ExitCode::FAILURE;
    }
    let size = 1 + grow(size.saturating_sub(1), fanout, sessions);
    say(format_args!("up {size}"));
    block()
}

/// Starts `below` processes under this one, in at most `fanout` subtrees of
/// near-equal size, and waits until each subtree says it is up; returns how many
/// did. Each child's stdout is a pipe to us (dropped once it has spoken); its
/// stderr is ours.
fn grow(below: u32, fanout: u32, sessions: bool) -> u32 {
    let branches = below.min(fanout);
    let flags: &[&str] = if sessions { &["--sessions"] } else { &[] };
    let children: Vec<_> = (0..branches)
        .filter_map(|i| {
            let share = below / branches + u32::from(i < below % branches);
            self_command(&["node", &share.to_string(), &fanout.to_string()], flags)
                .spawn()
                .ok()
        })
        .collect();
    let mut up = 0;
    for mut child in children {
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        up += line
            .strip_prefix("up ")
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(0);
    }
    up
}

/// N idle processes that say whether anyone signalled them (see the header).
fn decoys(count: usize) -> ExitCode {
    let pids = match sys::fixture::fork_idle_children(count) {
        Ok(pids) => pids,
        Err(e) => {
            say(format_args!("fork failed: {e}"));
            return ExitCode::FAILURE;
        }
    };
    say(format_args!(
        "decoys {} master {}",
        pids.len(),
        std::process::id()
    ));
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        if line.trim() != "check" {
            continue;
        }
        for &pid in &pids {
            let live = sys::proc_info(pid).is_some_and(|p| p.is_live());
            match sys::fixture::pending_signals(pid) {
                Some(0) if live => {}
                Some(pending) if live => say(format_args!("disturbed {pid} pending {pending:#x}")),
                _ => say(format_args!("disturbed {pid} gone")),
            }
        }
        say(format_args!("checked {}", pids.len()));
    }
    ExitCode::SUCCESS
}

fn identify(pids: &[String]) -> ExitCode {
    for pid in pids.iter().filter_map(|p| p.parse::<Pid>().ok()) {
        match sys::proc_info(pid).filter(|p| p.is_live()) {
            Some(info) => say(format_args!("{pid} {}", info.start.0)),
            None => say(format_args!("{pid} gone")),
        }
    }
    ExitCode::SUCCESS
}

fn wait_gone(rest: &[String], within: u32) -> ExitCode {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(within.into());
    // Each process is pinned first, then its start time checked: a PID that shows
    // another start time is another process, and the one named is gone.
    let pinned: Vec<(Pid, sys::PidFd)> = rest
        .iter()
        .filter_map(|a| a.split_once(':'))
        .filter_map(|(pid, start)| Some((pid.parse::<Pid>().ok()?, start.parse::<u64>().ok()?)))
        .filter_map(|(pid, start)| {
            let pidfd = sys::PidFd::open(pid).ok()?;
            let info = sys::proc_info(pid)?;
            (info.is_live() && info.start.0 == start).then_some((pid, pidfd))
        })
        .collect();
    let mut alive: Vec<&(Pid, sys::PidFd)> = pinned.iter().collect();
    while !alive.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let waitables: Vec<_> = alive.iter().map(|(_, fd)| fd.waitable()).collect();
        let Ok(exited) = sys::poll_readable(&waitables, Some(left)) else {
            break;
        };
        alive = alive
            .into_iter()
            .zip(exited)
            .filter(|(_, exited)| !exited)
            .map(|(p, _)| p)
            .collect();
    }
    if alive.is_empty() {
        say("gone");
        return ExitCode::SUCCESS;
    }
    for (pid, _) in alive {
        say(format_args!("alive {pid}"));
    }
    ExitCode::FAILURE
}

fn value_at(rest: &[String], at: usize) -> Option<u32> {
    rest.get(at).and_then(|v| v.parse().ok())
}

fn label(rest: &[String]) -> &str {
    rest.first().map_or("child", String::as_str)
}

fn block() -> ExitCode {
    loop {
        std::thread::park();
    }
}

fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn usage() -> ExitCode {
    eprintln!("usage: ocwrap-fixture tree|spawn|sleep … (see the source header)");
    ExitCode::from(2)
}
