//! `ocwrap up`: what a plugin's `ensureServer` calls (docs/DESIGN.md, "`up`").
//! Start-or-attach in the background, wait until ready, report, and leave nothing
//! behind on failure.
//!
//! 1. A live supervisor holds the name: attach the caller's owners; the reply comes
//!    once the server is ready; report `attached`.
//! 2. Else the port or socket already answers: report `external`; nothing is
//!    started, recorded or ever signalled. Something at the socket path that is
//!    not a socket of this user fails `up`, with nothing started.
//! 3. Else start `ocwrap __supervise` detached (own session, stdio to the log),
//!    hand it the validated config and the resolved owners, and block on its
//!    answer (see [`crate::handoff`]): report `started`.
//!
//! Concurrent `up`s for one name take turns on `<name>.up` (a flock) for the
//! decision, and hold it until the supervisor they started says it holds the
//! name's own lock, so exactly one starts and the others find it live and attach.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{open_state, print_json};
use crate::cli::{StdinMode, UpArgs};
use crate::config::{self, RunConfig};
use crate::control::{self, Peer, Refusal, Request};
use crate::diag;
use crate::error::{self, Error};
use crate::exit;
use crate::handoff::{self, Channel, Event, Handoff};
use crate::identity::Name;
use crate::owner::{self, Lease, Owner};
use crate::process::Pid;
use crate::ready::{Readiness, socket};
use crate::spawn;
use crate::state::StateDir;
use crate::state::junk::{self, Role};
use crate::state::lock::Lock;
use crate::state::record::Record;
use crate::sys::{self, Detached, HandoffChannel};

/// A log over this size at start is moved to `<log>.1` first.
const LOG_ROTATE_AT: u64 = 10 * 1024 * 1024;
/// Lines of the log quoted when `up` fails.
const LOG_TAIL_LINES: usize = 20;
/// How long `up` waits after asking a supervisor it started to stop.
const STOP_WAIT: Duration = Duration::from_millis(250);

#[derive(Serialize)]
struct UpJson<'a> {
    status: &'static str,
    name: Option<&'a str>,
    url: Option<String>,
    port: Option<u16>,
    socket: Option<String>,
    /// How readiness was judged (`connect`, `health`, `notify`, `fd:N`, `exec`).
    ready: Option<String>,
    pid: Option<Pid>,
    pgid: Option<Pid>,
    supervisor_pid: Option<Pid>,
    owners: Vec<Owner>,
    /// The caller's leases: the owners this call resolved, and how each was found.
    leases: &'a [Lease],
    log: Option<String>,
}

#[derive(Serialize)]
struct ErrorJson {
    status: &'static str,
    kind: &'static str,
    error: String,
    exit_status: Option<i32>,
    log_tail: Option<String>,
}

enum Outcome {
    Started(Record),
    Attached(Record),
    External(Readiness),
}

/// Why `up` failed, with what a plugin needs to show its user.
pub struct Failure {
    kind: &'static str,
    error: String,
    exit_status: Option<i32>,
    log_tail: Option<String>,
    code: u8,
}

impl Failure {
    fn from_error(e: Error) -> Failure {
        Failure {
            kind: e.kind(),
            error: error::one_line(&e),
            exit_status: None,
            log_tail: None,
            code: e.exit_code(),
        }
    }
}

/// What a successful `up` found or did, and the caller's leases.
pub struct Answer {
    outcome: Outcome,
    leases: Vec<Lease>,
}

impl Answer {
    pub fn status(&self) -> &'static str {
        match self.outcome {
            Outcome::Started(_) => "started",
            Outcome::Attached(_) => "attached",
            Outcome::External { .. } => "external",
        }
    }
}

pub fn run(args: UpArgs) -> Result<u8, Error> {
    let json = args.json;
    let config = RunConfig::from_args(args.run)?;
    diag::set_verbose(config.verbose);
    let outcome = match up_with(&config, args.ready_timeout, owner::Caller::RETURNS) {
        Err(e @ Error::Usage(_)) => return Err(e),
        Err(e) => Err(Failure::from_error(e)),
        Ok(answer) => answer,
    };
    Ok(report(outcome, json))
}

/// `up` with a checked config, its owners resolved for `caller` once the state dir
/// is checked. `Err` only for what fails before anything is looked at (usage,
/// state dir, owners); the rest is the inner `Result`.
pub fn up_with(
    config: &RunConfig,
    timeout: Duration,
    caller: owner::Caller<'_>,
) -> Result<Result<Answer, Failure>, Error> {
    let Some(name) = &config.name else {
        return Err(config::usage(
            clap::error::ErrorKind::MissingRequiredArgument,
            "up needs --port, --socket or --name".into(),
        ));
    };
    let state = open_state(config.state_dir.as_deref())?;
    state.checked_socket_path(name)?;
    let leases = owner::resolve(&config.owners, caller)?;
    let owners = owner::owners_of(&leases);
    Ok(bring_up(config, name, &state, &owners, timeout).map(|outcome| Answer { outcome, leases }))
}

fn bring_up(
    config: &RunConfig,
    stem: &Name,
    state: &StateDir,
    owners: &[Owner],
    timeout: Duration,
) -> Result<Outcome, Failure> {
    let lock = state.lock_path(stem);
    let peer = Peer::new(state, stem.stem());
    let deadline = crate::duration::deadline_after(Instant::now(), timeout);
    loop {
        let turn_path = state.turn_path(stem);
        let turn = Lock::acquire_until(turn_path.clone(), deadline)
            .map_err(|e| {
                let e = junk::in_the_way_or(&turn_path, Role::Turn, "waiting for our turn")(e);
                Failure::from_error(e)
            })?
            .ok_or_else(|| {
                failure(
                    error::kind::NOT_READY,
                    format!("{stem}: another ocwrap up held the turn past the ready timeout"),
                    None,
                )
            })?;
        if peer.is_live() {
            // Removing the turn file while holding it keeps the directory tidy;
            // a waiter that locked the old file sees that and locks the new one.
            turn.remove();
            match attach(&peer, stem, owners, deadline)? {
                Some(record) => return Ok(Outcome::Attached(record)),
                // The supervisor was stopping or went away: decide again.
                None => continue,
            }
        }
        if let Err(e) = socket_clear(&config.ready) {
            turn.remove();
            return Err(Failure::from_error(e));
        }
        if config.ready.answering() {
            turn.remove();
            return Ok(Outcome::External(config.ready.clone()));
        }
        // Junk under the name's lock or socket would fail the supervisor at once:
        // said here, with nothing started.
        let in_the_way = junk::ensure_clear(&lock, Role::Lock)
            .and_then(|()| junk::ensure_clear(&state.socket_path(stem), Role::Socket));
        if let Err(e) = in_the_way {
            turn.remove();
            return Err(Failure::from_error(e));
        }
        let log = log_path(config, state, stem);
        let mut started = Started::spawn(config, owners, log)?;
        let outcome = started.until_ready(state, stem, turn, deadline, timeout);
        return outcome.map(Outcome::Started);
    }
}

/// Attaches `owners` to the live supervisor of `stem`; its reply comes once the
/// server is ready. Without owners (`--owner none`) there is no lease to add: it
/// asks for the status, answered once ready. `Ok(None)`: it was stopping or went
/// away, so the caller should decide again.
fn attach(
    peer: &Peer,
    stem: &Name,
    owners: &[Owner],
    deadline: Instant,
) -> Result<Option<Record>, Failure> {
    let wait_ms = u64::try_from(
        deadline
            .saturating_duration_since(Instant::now())
            .as_millis(),
    )
    .ok();
    let request = if owners.is_empty() {
        Request::Status {
            wait_ready: true,
            wait_ms,
        }
    } else {
        Request::Attach {
            owners: owners.to_vec(),
            client: Pid::current(),
            wait_ms,
        }
    };
    if !peer.is_live() {
        return Ok(None);
    }
    let timed_out = || {
        failure(
            error::kind::NOT_READY,
            format!("{stem}: not ready before the ready timeout"),
            None,
        )
    };
    // `request_until` asks a busy supervisor again until the deadline.
    match peer.ask(&request, deadline) {
        Ok(reply) if reply.ok => {
            if reply.record.is_some() {
                diag::note(format_args!("attached to {stem}"));
            }
            Ok(reply.record)
        }
        Ok(reply) if reply.kind == Some(Refusal::Stopping) => {
            // Let it finish, then start a new one.
            peer.wait_gone(deadline);
            Ok(None)
        }
        Ok(reply) if matches!(reply.kind, Some(Refusal::Busy | Refusal::Timeout)) => {
            Err(timed_out())
        }
        Ok(reply) if reply.kind == Some(Refusal::BadRequest) => Err(failure(
            error::kind::VERSION_MISMATCH,
            format!(
                "{stem}: its supervisor does not understand this ocwrap's attach ({}); it runs another version of ocwrap: stop it, or use the same version",
                reply.error.unwrap_or_default()
            ),
            None,
        )),
        Ok(reply) => Err(failure(
            error::kind::CONTROL_FAILED,
            reply.error.unwrap_or_else(|| "attach refused".into()),
            None,
        )),
        // The wait was for readiness: a supervisor that did not answer in time
        // was not ready in time.
        Err(control::RequestError::Unanswered { .. }) => Err(timed_out()),
        Err(e) if Instant::now() >= deadline => Err(failure(
            error::kind::NOT_READY,
            format!("{stem}: not ready before the ready timeout ({e})"),
            None,
        )),
        // It went away between the lock check and the request: decide again.
        Err(_) => Ok(None),
    }
}

/// Refuses what stands at `--socket`'s path and is not a socket of this user (a
/// symlink, a directory, a FIFO, a file, another user's socket): the server could
/// not bind there, and it is not ours to remove or to report as `external`.
fn socket_clear(ready: &Readiness) -> Result<(), Error> {
    let Some(path) = ready.socket() else {
        return Ok(());
    };
    match socket::look(path) {
        socket::Look::InTheWay(what) => Err(Error::InTheWay {
            path: path.path().to_path_buf(),
            what: format!("{what} where --socket expects the server's socket"),
        }),
        _ => Ok(()),
    }
}

fn log_path(config: &RunConfig, state: &StateDir, stem: &Name) -> PathBuf {
    config.log.clone().unwrap_or_else(|| state.log_path(stem))
}

/// A supervisor this `up` started, and the channel it answers on.
struct Started {
    child: Detached,
    channel: Channel,
    log: PathBuf,
}

impl Started {
    /// Starts `ocwrap __supervise` detached (its own session on Unix), so that
    /// killing the caller's process group (an agent's command timeout does) cannot
    /// reach it: only the loss of its owners can. Then hands it the config and the
    /// owners.
    fn spawn(config: &RunConfig, owners: &[Owner], log: PathBuf) -> Result<Started, Failure> {
        let (out, err) = open_rotated_log(&log)?;
        let exe = std::env::current_exe()
            .map_err(|e| Failure::from_error(Error::os("finding the ocwrap binary")(e)))?;
        let (ours, theirs) = HandoffChannel::pair()
            .map_err(|e| Failure::from_error(Error::os("making the handoff channel")(e)))?;
        let mut command = Command::new(exe);
        command.arg(handoff::SUBCOMMAND);
        // The server must not take the caller's OCWRAP_* for its own options.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("OCWRAP_") {
                command.env_remove(key);
            }
        }
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        // Our copy of its end is closed once it runs, so that its exit ends the
        // channel.
        let child = sys::spawn_detached(command, theirs)
            .map_err(|e| Failure::from_error(Error::os("starting the supervisor")(e)))?;
        let mut config = config.clone();
        config.log = Some(log.clone());
        config.stdin = StdinMode::Null;
        let mut channel = Channel::new(ours);
        let sent = channel.send(&Handoff {
            config,
            owners: owners.to_vec(),
        });
        let mut started = Started {
            child,
            channel,
            log,
        };
        if let Err(e) = sent {
            started.kill();
            return Err(Failure::from_error(Error::os(
                "handing over to the supervisor",
            )(e)));
        }
        Ok(started)
    }

    /// Waits for the supervisor's answers: gives up the turn once it holds the
    /// name, returns its record once the server is ready. On failure or timeout,
    /// makes sure it is gone, so nothing is left running.
    fn until_ready(
        &mut self,
        state: &StateDir,
        stem: &Name,
        turn: Lock,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Record, Failure> {
        let mut turn = Some(turn);
        let outcome = loop {
            match self.channel.next(deadline) {
                Ok(Some(Event::Registered)) => {
                    if let Some(turn) = turn.take() {
                        turn.remove();
                    }
                }
                Ok(Some(Event::Ready { record })) => break Ok(*record),
                Ok(Some(Event::Failed {
                    error,
                    exit_status,
                    kind,
                })) => {
                    // It tears down what is left, then exits: the end of the channel.
                    if !self.ended_by(deadline) {
                        self.stop(state, stem);
                    }
                    let kind = error::kind::ALL
                        .iter()
                        .find(|k| **k == kind)
                        .copied()
                        .unwrap_or(error::kind::SUPERVISOR_FAILED);
                    let mut f = failure(kind, error, Some(&self.log));
                    f.exit_status = exit_status;
                    break Err(f);
                }
                Err(e) if is_timeout(&e) => {
                    self.stop(state, stem);
                    // exit_status stays null: the server did not exit, we stopped it.
                    break Err(failure(
                        error::kind::NOT_READY,
                        format!("{stem}: not ready within {timeout:?}"),
                        Some(&self.log),
                    ));
                }
                // The channel ended without an answer: the supervisor is gone.
                Ok(None) | Err(_) => {
                    let status = self.child.wait().ok().and_then(|s| s.code());
                    break Err(supervisor_ended(status, &self.log));
                }
            }
        };
        if let Some(turn) = turn {
            turn.remove();
        }
        outcome
    }

    /// Whether the supervisor ended (closed its end of the channel) by `deadline`.
    fn ended_by(&mut self, deadline: Instant) -> bool {
        loop {
            match self.channel.next(deadline) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    let _ = self.child.wait();
                    return true;
                }
                Err(e) if is_timeout(&e) => return false,
                Err(_) => {
                    let _ = self.child.wait();
                    return true;
                }
            }
        }
    }

    /// Stops a supervisor that never became ready: `stop`, and a second `stop`
    /// (which means SIGKILL) if its tree does not go at once; SIGKILL to the
    /// supervisor itself as the last resort (its server then dies of its
    /// parent-death signal, the rest is swept by the next command).
    fn stop(&mut self, state: &StateDir, stem: &Name) {
        let peer = Peer::new(state, stem.stem());
        for _ in 0..2 {
            let _ = peer.ask(&Request::Stop, Instant::now() + control::IO_TIMEOUT);
            if self.ended_by(Instant::now() + STOP_WAIT) {
                return;
            }
        }
        self.kill();
    }

    fn kill(&mut self) {
        self.child.kill();
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Opens the log for the supervisor's and the server's output, first moving a log
/// over [`LOG_ROTATE_AT`] to `<log>.1`.
fn open_rotated_log(log: &Path) -> Result<(File, File), Failure> {
    let open = || -> std::io::Result<(File, File)> {
        if fs::metadata(log).is_ok_and(|m| m.is_file() && m.len() > LOG_ROTATE_AT) {
            let mut rotated = log.as_os_str().to_owned();
            rotated.push(".1");
            fs::rename(log, rotated)?;
        }
        spawn::open_log(log)
    };
    open().map_err(|source| {
        Failure::from_error(Error::Log {
            path: log.to_path_buf(),
            source,
        })
    })
}

/// The supervisor ended without an answer. Exit 125 (or 2) is its own failure
/// (state dir, socket path, name taken): its message is in the log, since its
/// stderr goes there.
fn supervisor_ended(status: Option<i32>, log: &Path) -> Failure {
    let what = match status {
        Some(code) => {
            format!("the supervisor ended before the server was ready (exit status {code})")
        }
        None => "the supervisor was killed before the server was ready".to_string(),
    };
    failure(error::kind::SUPERVISOR_FAILED, what, Some(log))
}

fn failure(kind: &'static str, error: String, log: Option<&Path>) -> Failure {
    Failure {
        kind,
        error,
        exit_status: None,
        log_tail: log.and_then(log_tail),
        code: exit::FAILURE,
    }
}

/// The last lines of the log: only from a regular file, and only its last 64 KiB
/// (a log named `/dev/full` or a FIFO yields nothing rather than an endless read).
fn log_tail(log: &Path) -> Option<String> {
    const TAIL_BYTES: u64 = 64 * 1024;
    let mut file = File::open(log).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    file.seek(SeekFrom::Start(meta.len().saturating_sub(TAIL_BYTES)))
        .ok()?;
    let mut bytes = Vec::new();
    file.take(TAIL_BYTES).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    Some(lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n"))
}

pub fn report(outcome: Result<Answer, Failure>, json: bool) -> u8 {
    match outcome {
        Ok(answer) => {
            let status = answer.status();
            let Answer { outcome, leases } = answer;
            let (record, external) = match &outcome {
                Outcome::Started(r) | Outcome::Attached(r) => (Some(r), None),
                Outcome::External(ready) => (None, Some(ready)),
            };
            let out = UpJson {
                status,
                name: record.and_then(|r| r.name.as_deref()),
                url: record
                    .and_then(|r| r.url.clone())
                    .or(external.and_then(Readiness::url)),
                port: record
                    .and_then(|r| r.port)
                    .or(external.and_then(Readiness::port)),
                socket: record
                    .and_then(|r| r.socket.clone())
                    .or(external.and_then(|e| e.socket().map(ToString::to_string))),
                ready: record
                    .map(|r| r.ready.clone())
                    .or(external.map(|e| e.by().to_string())),
                pid: record.map(|r| r.server.pid),
                pgid: record.map(|r| r.server.pgid),
                supervisor_pid: record.map(|r| r.supervisor.pid),
                owners: record.map(|r| r.owners.clone()).unwrap_or_default(),
                // An external server holds no lease of ours.
                leases: if external.is_some() { &[] } else { &leases },
                log: record.and_then(|r| r.log.clone()),
            };
            if json {
                print_json(&out);
            } else {
                super::print_line(&format!(
                    "{status} {}: {} (server pid {}, supervisor pid {}, log {})",
                    out.name.unwrap_or("-"),
                    out.url.as_deref().or(out.socket.as_deref()).unwrap_or("-"),
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
                    kind: f.kind,
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
