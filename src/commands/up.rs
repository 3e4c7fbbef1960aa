//! `ocwrap up`: what a plugin's `ensureServer` calls (SPEC §5). Start-or-attach in
//! the background, wait until ready, report, and leave nothing behind on failure.
//!
//! 1. A live supervisor holds the name: attach the caller's owners, wait until it is
//!    ready, report `attached`.
//! 2. Else the port already answers: report `external`; nothing is started,
//!    recorded or ever signalled.
//! 3. Else start `ocwrap run` detached (own session, stdio to the log) with the
//!    owners as explicit `--owner-pid`s, wait until it is ready, report `started`.
//!
//! Concurrent `up`s for one name take turns on `<name>.up` (a flock) for the
//! decision, and hold it until the supervisor they started holds the name's own
//! lock, so exactly one starts and the others find it live and attach.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use process_wrap::std::{ChildWrapper, CommandWrap, ProcessSession};
use serde::Serialize;

use super::print_json;
use crate::cli::{ContainArg, UpArgs, WatchMethodArg};
use crate::config::{self, RunConfig};
use crate::control::{self, Request};
use crate::diag;
use crate::error::{self, Error};
use crate::exit;
use crate::owner::{self, Owner};
use crate::process::Pid;
use crate::ready::Probe;
use crate::record::{self, Lock, Record, RecordState};
use crate::spawn;
use crate::state::StateDir;

/// A log over this size at start is moved to `<log>.1` first.
const LOG_ROTATE_AT: u64 = 10 * 1024 * 1024;
/// Lines of the log quoted when `up` fails.
const LOG_TAIL_LINES: usize = 20;
/// How often `up` looks at the record or the supervisor while waiting.
const LOOK_EVERY: Duration = Duration::from_millis(10);

#[derive(Serialize)]
struct UpJson<'a> {
    status: &'static str,
    name: Option<&'a str>,
    url: Option<String>,
    port: Option<u16>,
    pid: Option<Pid>,
    pgid: Option<Pid>,
    supervisor_pid: Option<Pid>,
    owners: Vec<Owner>,
    log: Option<String>,
}

#[derive(Serialize)]
struct ErrorJson {
    status: &'static str,
    error: String,
    exit_status: Option<i32>,
    log_tail: Option<String>,
}

enum Outcome {
    Started(Record),
    Attached(Record),
    External { url: String, port: u16 },
}

/// Why `up` failed, with what a plugin needs to show its user.
struct Failure {
    error: String,
    exit_status: Option<i32>,
    log_tail: Option<String>,
    code: u8,
}

impl Failure {
    fn from_error(e: Error) -> Failure {
        Failure {
            error: error::one_line(&e),
            exit_status: None,
            log_tail: None,
            code: e.exit_code(),
        }
    }
}

pub fn run(args: UpArgs) -> Result<u8, Error> {
    let json = args.json;
    let outcome = RunConfig::from_args(args.run).and_then(|config| {
        if config.name.is_none() {
            return Err(config::usage(
                clap::error::ErrorKind::MissingRequiredArgument,
                "up needs --port or --name".into(),
            ));
        }
        let state = StateDir::open(config.state_dir.as_deref())?;
        let owners = owner::resolve(&config.owners)?;
        Ok(bring_up(&config, &state, &owners, args.ready_timeout))
    });
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e @ Error::Usage(_)) => return Err(e),
        Err(e) => Err(Failure::from_error(e)),
    };
    Ok(report(outcome, json))
}

fn bring_up(
    config: &RunConfig,
    state: &StateDir,
    owners: &[Owner],
    timeout: Duration,
) -> Result<Outcome, Failure> {
    let stem = config.name.as_deref().unwrap_or_default();
    let deadline = Instant::now() + timeout;
    loop {
        let turn = Lock::acquire_file(state.path().join(format!("{stem}.up")))
            .map_err(|e| Failure::from_error(Error::os("waiting for our turn")(e)))?;
        if record::is_held(state, stem) {
            drop(turn);
            match attach(state, stem, owners, deadline)? {
                Some(record) => return Ok(Outcome::Attached(record)),
                // The supervisor was stopping or went away: decide again.
                None => continue,
            }
        }
        let answering = config
            .port
            .filter(|&port| Probe::new(&config.host, port, config.health.as_deref()).check());
        if let Some(port) = answering {
            drop(turn);
            let url = crate::supervisor::url(&config.host, port);
            return Ok(Outcome::External { url, port });
        }
        let log = log_path(config, state, stem);
        let mut supervisor = spawn_supervisor(config, state, stem, owners, &log)?;
        let taken = wait_for_lock(state, stem, supervisor.as_mut(), deadline);
        drop(turn);
        taken.map_err(|status| exited_early(status, &log))?;
        return wait_started(state, stem, supervisor, &log, deadline, timeout)
            .map(Outcome::Started);
    }
}

/// Attaches `owners` to the live supervisor of `stem` and waits until it is ready.
/// `Ok(None)`: it was stopping or went away, so the caller should decide again.
fn attach(
    state: &StateDir,
    stem: &str,
    owners: &[Owner],
    deadline: Instant,
) -> Result<Option<Record>, Failure> {
    let request = Request::Attach {
        owners: owners.iter().map(|o| o.pid).collect(),
    };
    // Some(true): attached; Some(false): decide again; None: not listening yet.
    let attached = look_until(deadline, || {
        if !record::is_held(state, stem) {
            return Some(Ok(false));
        }
        match control::request(&state.socket_path(stem), &request) {
            Ok(reply) if reply.ok => Some(Ok(true)),
            Ok(reply)
                if reply
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("stopping")) =>
            {
                // Let it finish, then start a new one.
                let _ = record::wait_until_free(state, stem);
                Some(Ok(false))
            }
            Ok(reply) => Some(Err(failure(
                reply.error.unwrap_or_else(|| "attach refused".into()),
                None,
            ))),
            // Locked but not listening yet: it is starting up.
            Err(_) => None,
        }
    });
    match attached {
        Some(Ok(true)) => {}
        Some(Ok(false)) => return Ok(None),
        Some(Err(f)) => return Err(f),
        None => {
            return Err(failure(
                format!("{stem}: could not attach before the ready timeout"),
                None,
            ));
        }
    }
    diag::note(format_args!("attached to {stem}"));
    wait_ready_attached(state, stem, deadline)
}

/// Waits until the supervisor we attached to reports ready; `Ok(None)` when it
/// is stopping or gone instead.
fn wait_ready_attached(
    state: &StateDir,
    stem: &str,
    deadline: Instant,
) -> Result<Option<Record>, Failure> {
    let outcome = look_until(deadline, || match record::read(&state.record_path(stem)) {
        // Written after our attach was accepted, so it lists our owners.
        Ok(r) if r.state == RecordState::Ready => Some(Some(r)),
        Ok(r) if r.state == RecordState::Stopping => {
            let _ = record::wait_until_free(state, stem);
            Some(None)
        }
        _ if !record::is_held(state, stem) => Some(None),
        _ => None,
    });
    outcome.ok_or_else(|| failure(format!("{stem}: not ready before the ready timeout"), None))
}

fn log_path(config: &RunConfig, state: &StateDir, stem: &str) -> PathBuf {
    config.log.clone().unwrap_or_else(|| state.log_path(stem))
}

/// Starts `ocwrap run …` for the same command in its own session, so that killing
/// the caller's process group (an agent's command timeout does) cannot reach it:
/// only the loss of its owners can.
fn spawn_supervisor(
    config: &RunConfig,
    state: &StateDir,
    stem: &str,
    owners: &[Owner],
    log: &Path,
) -> Result<Box<dyn ChildWrapper>, Failure> {
    let open_log = || -> std::io::Result<(File, File)> {
        if fs::metadata(log).is_ok_and(|m| m.len() > LOG_ROTATE_AT) {
            let mut rotated = log.as_os_str().to_owned();
            rotated.push(".1");
            fs::rename(log, rotated)?;
        }
        spawn::open_log(log)
    };
    let (out, err) = open_log().map_err(|source| {
        Failure::from_error(Error::Log {
            path: log.to_path_buf(),
            source,
        })
    })?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::from_error(Error::os("finding the ocwrap binary")(e)))?;
    let mut command = CommandWrap::with_new(exe, |c| {
        c.arg("run")
            .args(run_args(config, state, stem, owners, log));
        c.arg("--").arg(&config.program).args(&config.args);
        // Everything is passed explicitly; the caller's OCWRAP_* must not add to it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("OCWRAP_") {
                c.env_remove(key);
            }
        }
        c.stdin(Stdio::null()).stdout(out).stderr(err);
    });
    command.wrap(ProcessSession);
    command
        .spawn()
        .map_err(|e| Failure::from_error(Error::os("starting the supervisor")(e)))
}

fn run_args(
    config: &RunConfig,
    state: &StateDir,
    stem: &str,
    owners: &[Owner],
    log: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--name".into(),
        stem.into(),
        "--host".into(),
        config.host.clone(),
        "--grace".into(),
        format!("{}ms", config.grace.as_millis()),
        "--linger".into(),
        format!("{}ms", config.linger.as_millis()),
        "--state-dir".into(),
        state.path().to_string_lossy().into_owned(),
        "--log".into(),
        log.to_string_lossy().into_owned(),
        "--stdin".into(),
        "null".into(),
        "--watch-method".into(),
        match config.watch_method {
            WatchMethodArg::Auto => "auto",
            WatchMethodArg::Pidfd => "pidfd",
            WatchMethodArg::Poll => "poll",
        }
        .into(),
        "--contain".into(),
        match config.contain {
            ContainArg::Auto => "auto",
            ContainArg::Cgroup => "cgroup",
            ContainArg::Group => "group",
        }
        .into(),
    ];
    if let Some(port) = config.port {
        args.extend(["--port".into(), port.to_string()]);
    }
    if let Some(health) = &config.health {
        args.extend(["--health".into(), health.clone()]);
    }
    if config.session {
        args.push("--session".into());
    }
    if config.verbose {
        args.push("-v".into());
    }
    if owners.is_empty() {
        args.extend(["--owner".into(), "none".into()]);
    }
    for owner in owners {
        args.extend(["--owner-pid".into(), owner.pid.to_string()]);
    }
    args
}

/// Waits until the new supervisor holds the name's lock. `Err` carries its exit
/// status if it exited first (bad state dir, name taken, command not found…).
fn wait_for_lock(
    state: &StateDir,
    stem: &str,
    supervisor: &mut dyn ChildWrapper,
    deadline: Instant,
) -> Result<(), Option<i32>> {
    let outcome = look_until(deadline, || {
        if record::is_held(state, stem) {
            return Some(Ok(()));
        }
        match supervisor.try_wait() {
            Ok(Some(status)) => Some(Err(status.code())),
            _ => None,
        }
    });
    outcome.unwrap_or(Err(None))
}

/// Waits until the supervisor we started reports the server ready. On failure,
/// stops it and waits until it is gone, so nothing is left running.
fn wait_started(
    state: &StateDir,
    stem: &str,
    mut supervisor: Box<dyn ChildWrapper>,
    log: &Path,
    deadline: Instant,
    timeout: Duration,
) -> Result<Record, Failure> {
    let outcome = look_until(deadline, || {
        if let Ok(Some(status)) = supervisor.try_wait() {
            return Some(Err(exited_early(status.code(), log)));
        }
        record::read(&state.record_path(stem))
            .ok()
            .filter(|r| r.state == RecordState::Ready)
            .map(Ok)
    });
    outcome.unwrap_or_else(|| {
        stop(state, stem, supervisor.as_mut());
        // exit_status stays null: the server did not exit, we stopped it.
        Err(failure(
            format!("{stem}: not ready within {timeout:?}"),
            Some(log),
        ))
    })
}

/// Stops a supervisor that never became ready: `stop`, and a second `stop` (which
/// means SIGKILL) if its tree does not go at once; SIGKILL to the supervisor itself
/// as the last resort (its server then dies of its parent-death signal).
fn stop(state: &StateDir, stem: &str, supervisor: &mut dyn ChildWrapper) {
    let socket = state.socket_path(stem);
    let _ = control::request(&socket, &Request::Stop);
    if wait_exit(supervisor, Duration::from_millis(250)) {
        return;
    }
    let _ = control::request(&socket, &Request::Stop);
    if wait_exit(supervisor, Duration::from_millis(250)) {
        return;
    }
    let _ = supervisor.start_kill();
    let _ = supervisor.wait();
}

fn wait_exit(supervisor: &mut dyn ChildWrapper, within: Duration) -> bool {
    look_until(Instant::now() + within, || {
        matches!(supervisor.try_wait(), Ok(Some(_))).then_some(())
    })
    .is_some()
}

/// Asks `look` every [`LOOK_EVERY`] until it answers, or `None` once `deadline` has
/// passed. `up` waits on a record file and on a child's exit, and neither can wake
/// a short-lived command that owns no event loop, so it looks.
fn look_until<T>(deadline: Instant, mut look: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(answer) = look() {
            return Some(answer);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(LOOK_EVERY);
    }
}

fn exited_early(status: Option<i32>, log: &Path) -> Failure {
    let what = match status {
        Some(code) => format!("the server exited before it was ready (exit status {code})"),
        None => "the supervisor did not start in time".to_string(),
    };
    let mut f = failure(what, Some(log));
    f.exit_status = status;
    f
}

fn failure(error: String, log: Option<&Path>) -> Failure {
    Failure {
        error,
        exit_status: None,
        log_tail: log.and_then(log_tail),
        code: exit::FAILURE,
    }
}

/// The last lines of the log (at most the last 64 KiB are read).
fn log_tail(log: &Path) -> Option<String> {
    let mut file = File::open(log).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    Some(lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n"))
}

fn report(outcome: Result<Outcome, Failure>, json: bool) -> u8 {
    match outcome {
        Ok(outcome) => {
            let (status, record, external) = match &outcome {
                Outcome::Started(r) => ("started", Some(r), None),
                Outcome::Attached(r) => ("attached", Some(r), None),
                Outcome::External { url, port } => ("external", None, Some((url.clone(), *port))),
            };
            let out = UpJson {
                status,
                name: record.and_then(|r| r.name.as_deref()),
                url: record
                    .and_then(|r| r.url.clone())
                    .or(external.as_ref().map(|e| e.0.clone())),
                port: record
                    .and_then(|r| r.port)
                    .or(external.as_ref().map(|e| e.1)),
                pid: record.map(|r| r.server.pid),
                pgid: record.map(|r| r.server.pgid),
                supervisor_pid: record.map(|r| r.supervisor.pid),
                owners: record.map(|r| r.owners.clone()).unwrap_or_default(),
                log: record.and_then(|r| r.log.clone()),
            };
            if json {
                print_json(&out);
            } else {
                super::print_line(&format!(
                    "{status} {}: {} (server pid {}, supervisor pid {}, log {})",
                    out.name.unwrap_or("-"),
                    out.url.as_deref().unwrap_or("-"),
                    out.pid.map_or("-".into(), |p| p.to_string()),
                    out.supervisor_pid.map_or("-".into(), |p| p.to_string()),
                    out.log.as_deref().unwrap_or("-"),
                ));
            }
            exit::SUCCESS
        }
        Err(f) => {
            if json {
                print_json(&ErrorJson {
                    status: "error",
                    error: f.error,
                    exit_status: f.exit_status,
                    log_tail: f.log_tail,
                });
            } else {
                diag::say(&f.error);
                if let Some(tail) = &f.log_tail {
                    diag::say(format_args!("last lines of the log:\n{tail}"));
                }
            }
            f.code
        }
    }
}
