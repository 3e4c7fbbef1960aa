//! The supervisor behind `ocwrap run` and `ocwrap __supervise`: it registers the
//! name, starts the server in its containment, and hands over to the event loop
//! ([`run_loop`]), which answers control requests ([`requests`]) and drives
//! teardown (docs/DESIGN.md, "Lifecycle").

mod requests;
mod run_loop;

use run_loop::Supervisor;

use std::path::Path;
use std::time::{Instant, SystemTime};

use crate::config::RunConfig;
use crate::contain::Containment;
use crate::diag;
use crate::error::{self, Error};
use crate::exit;
use crate::guard::{self, Guard};
use crate::handoff::{Event, Reporter};
use crate::identity::{Name, ServerId, SupervisorId};
use crate::owner::{self, Owner};
use crate::process::Pid;
use crate::ready::Watch;
use crate::ready::declared::Declared;
use crate::signals::Signals;
use crate::spawn;
use crate::state::StateDir;
use crate::state::record::{self, Record, RecordState};
use crate::state::registration::Registration;
use crate::state::sweep;
use crate::sys::{self, ServerChild};
use crate::watch::{OwnerWatch, WatchMethod};

/// The most leases one supervisor keeps: each costs a pidfd and a place in the
/// record, so the number is bounded like every other input.
pub const MAX_LEASES: usize = 256;

/// Who the owners are.
enum Owners {
    /// Resolved here from the command line (`ocwrap run`).
    FromConfig,
    /// As `up` resolved them, start times included (`ocwrap __supervise`).
    Given(Vec<Owner>),
}

/// Runs `ocwrap run` to the end and returns the exit code.
pub fn run(config: RunConfig) -> Result<i32, Error> {
    supervise(config, Owners::FromConfig, Reporter::none())
}

/// Runs the supervisor that `up` started (`ocwrap __supervise`), with the config
/// and owners `up` handed over, and tells `up` how it went.
pub fn run_handed_off() -> Result<i32, Error> {
    let (handoff, reporter) =
        Reporter::receive().map_err(Error::os("reading the handoff from ocwrap up"))?;
    supervise(handoff.config, Owners::Given(handoff.owners), reporter)
}

fn supervise(config: RunConfig, owners: Owners, mut reporter: Reporter) -> Result<i32, Error> {
    let outcome = register_and_run(config, owners, &mut reporter);
    if let Err(e) = &outcome {
        let exit_status = Some(i32::from(e.exit_code())).filter(|&code| {
            code == i32::from(exit::NOT_FOUND) || code == i32::from(exit::NOT_EXECUTABLE)
        });
        reporter.send(&Event::Failed {
            error: error::one_line(e),
            exit_status,
            kind: e.kind().to_string(),
        });
    }
    outcome
}

fn register_and_run(
    config: RunConfig,
    owners: Owners,
    reporter: &mut Reporter,
) -> Result<i32, Error> {
    diag::set_verbose(config.verbose);
    sys::ensure_stdio_open().map_err(Error::os("opening /dev/null for closed stdio"))?;
    let state = StateDir::open(config.state_dir.as_deref())?;
    sweep::sweep(&state);
    let me = Pid::current();
    let stem = config.name.clone().unwrap_or_else(|| Name::unnamed(me));
    state.checked_socket_path(&stem)?;
    let me = SupervisorId::current().ok_or_else(|| {
        Error::os("reading our own start time")(std::io::Error::other("no entry"))
    })?;
    let state_path = state.path().to_path_buf();
    let mut registration = Registration::take(state, stem, me)?;
    reporter.send(&Event::Registered);
    match start(&config, owners, me, &state_path, &mut registration) {
        Ok(parts) => {
            let reporter = std::mem::replace(reporter, Reporter::none());
            Ok(Supervisor::new(&config, registration, parts, reporter).run())
        }
        Err(e) => {
            registration.remove();
            Err(e)
        }
    }
}

/// What exists once the server has started.
pub(super) struct Started {
    pub(super) server: ServerChild,
    pub(super) signals: Signals,
    pub(super) owners: Vec<Owner>,
    pub(super) watch: OwnerWatch,
    pub(super) record: Record,
    pub(super) ready: Option<Watch>,
    pub(super) containment: Containment,
    pub(super) me: SupervisorId,
    /// Whether this process is a child subreaper.
    pub(super) subreaper: bool,
    pub(super) guard: Option<Guard>,
}

fn start(
    config: &RunConfig,
    owners: Owners,
    me: SupervisorId,
    state: &Path,
    registration: &mut Registration,
) -> Result<Started, Error> {
    let subreaper =
        sys::become_child_subreaper().map_err(Error::os("prctl(PR_SET_CHILD_SUBREAPER)"))?;
    let signals = Signals::install().map_err(Error::os("installing signal handlers"))?;
    let method = WatchMethod::choose(config.watch_method)?;
    // Given owners are not looked up again: one whose PID now shows another start
    // time is simply gone at the first check.
    let owners = match owners {
        Owners::FromConfig => {
            owner::owners_of(&owner::resolve(&config.owners, owner::Caller::default())?)
        }
        Owners::Given(owners) => owners,
    };
    let mut watch = OwnerWatch::new(method);
    for owner in &owners {
        diag::note(format_args!(
            "owner pid {} (start time {})",
            owner.pid, owner.start.0
        ));
        watch.add(*owner);
    }
    let containment = Containment::choose(config.contain, me)?;
    registration
        .claim_cgroup(containment.cgroup_path())
        .map_err(Error::os("writing the lock file"))?;
    let mut declared = Declared::prepare(config.ready.by(), &registration.notify_path())?;
    let guard = start_guard(config, me, state);
    let spawned = spawn::spawn_server(config, me.marker(), &containment, declared.as_ref());
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            // No tree to look for.
            if let Some(guard) = guard {
                guard.dismiss();
            }
            return Err(e);
        }
    };
    let leader = child.pid();
    diag::note(format_args!(
        "started {} as pid {leader} in its own {} ({method:?} watch)",
        config.program.to_string_lossy(),
        if config.session {
            "session"
        } else {
            "process group"
        },
    ));
    // The leader is our unreaped child, so its /proc entry exists even if it exited.
    let server_start = sys::proc_info(leader).map_or(me.start, |i| i.start);
    if let Some(declared) = &mut declared {
        declared.spawned();
    }
    let ready = Watch::start(&config.ready, declared, Instant::now());
    let server = ServerId {
        pid: leader,
        pgid: leader,
        start: server_start,
    };
    let record = new_record(config, me, server, &owners, &containment);
    Ok(Started {
        server: child,
        signals,
        owners,
        watch,
        record,
        ready,
        containment,
        me,
        subreaper,
        guard,
    })
}

/// Starts the guard, where one is wanted (docs/DESIGN.md, "The guard"). One that
/// cannot be started or armed is said and done without: the server still starts,
/// and the sweep of the next ocwrap command remains what ends its tree should
/// this supervisor be killed.
fn start_guard(config: &RunConfig, me: SupervisorId, state: &Path) -> Option<Guard> {
    if !guard::wanted(config.guard) {
        if config.guard {
            diag::note("--guard: the containment ends the tree with ocwrap here; no guard");
        }
        return None;
    }
    match Guard::start(me, state) {
        Ok(guard) => {
            diag::note(format_args!("guard pid {} is armed", guard.pid()));
            Some(guard)
        }
        Err(e) => {
            diag::say(format_args!(
                "no guard (the tree outlives a SIGKILL of ocwrap until the next ocwrap command): {e}"
            ));
            None
        }
    }
}

/// The record of a supervisor that has just started its server.
fn new_record(
    config: &RunConfig,
    supervisor: SupervisorId,
    server: ServerId,
    owners: &[Owner],
    containment: &Containment,
) -> Record {
    let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
    Record {
        version: record::RECORD_VERSION,
        name: config.name.as_ref().map(Name::to_string),
        supervisor,
        server,
        command: {
            let argv: Vec<String> = std::iter::once(&config.program)
                .chain(&config.args)
                .map(|a| text(a))
                .collect();
            record::bounded_command(argv.iter().map(String::as_str))
        },
        cwd: config
            .cwd
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .map(|d| text(d.as_os_str()))
            .unwrap_or_default(),
        port: config.ready.port(),
        url: config.ready.url(),
        socket: config.ready.socket().map(ToString::to_string),
        ready: config.ready.by().to_string(),
        owners: owners.to_vec(),
        started_at: crate::time::rfc3339(SystemTime::now()),
        // Written first when ready (see `Registration::save`).
        state: RecordState::Starting,
        log: config.log.as_ref().map(|p| text(p.as_os_str())),
        contain: containment.kind(),
        cgroup: containment.cgroup_path(),
        stop_cause: None,
        daemonized: false,
    }
}
