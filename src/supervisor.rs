//! The foreground supervisor behind `ocwrap run`: one event loop that waits on
//! signals, owners, control requests and readiness, and drives [`Teardown`] when a
//! rule says the tree must go.
//!
//! The loop sleeps in `poll(2)` on the signal self-pipe, the owners' pidfds, the
//! control socket, (while starting) the readiness probe and (while tearing down)
//! the tree's wake-up descriptor; its timeout is the nearest of the owner poll
//! interval (poll method only), the end of `--linger`, and the teardown deadline.
//! With pidfds and nothing happening it has no timeout at all, so an idle
//! supervisor costs no wake-ups.

use std::os::fd::BorrowedFd;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

use crate::config::RunConfig;
use crate::contain::Containment;
use crate::control::{Connection, ControlSocket, Reply, Request};
use crate::diag;
use crate::error::Error;
use crate::exit;
use crate::owner::{self, Leases, Owner};
use crate::process::Pid;
use crate::ready::{Probe, ReadyWatch};
use crate::record::{self, Lock, Record, RecordState, ServerId, SupervisorId};
use crate::signals::{self, Signals};
use crate::spawn;
use crate::state::StateDir;
use crate::sys;
use crate::teardown::{Phase, Teardown, Tree};
use crate::tree::ServerTree;
use crate::watch::{OwnerWatch, WatchMethod};

/// Why the tree is being torn down; it decides ocwrap's exit code (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// The last lease is gone (after `--linger`): our own rule, exit 0.
    OwnersGone,
    /// `ocwrap stop`: our own rule, exit 0.
    Stop,
    /// A terminating signal to ocwrap: exit with the server's status.
    Signal(libc::c_int),
    /// The server exited by itself: exit with its status.
    ServerExited,
}

/// What a supervisor holds in the state dir: its lock, its control socket and its
/// record. Removed together when it ends (the lock last).
struct Registration {
    state: StateDir,
    stem: String,
    lock: Lock,
    control: ControlSocket,
}

impl Registration {
    fn take(state: StateDir, stem: String) -> Result<Registration, Error> {
        let lock = Lock::try_acquire(&state, &stem)
            .map_err(Error::os("locking the name"))?
            .ok_or_else(|| already_running(&state, &stem))?;
        let control = ControlSocket::bind(&state.socket_path(&stem))
            .map_err(Error::os("binding the control socket"))?;
        Ok(Registration {
            state,
            stem,
            lock,
            control,
        })
    }

    fn save(&self, record: &Record) {
        if let Err(e) = record::write(&self.state.record_path(&self.stem), record) {
            diag::say(format_args!(
                "cannot write the record for {}: {e}",
                self.stem
            ));
        }
    }

    fn remove(self) {
        let _ = std::fs::remove_file(self.state.record_path(&self.stem));
        self.control.remove();
        self.lock.remove();
    }
}

fn already_running(state: &StateDir, stem: &str) -> Error {
    let pid = record::read(&state.record_path(stem))
        .ok()
        .map(|r| r.supervisor.pid);
    Error::AlreadyRunning {
        name: stem.to_string(),
        pid,
    }
}

/// Runs `ocwrap run` to the end and returns the exit code.
pub fn run(config: RunConfig) -> Result<u8, Error> {
    diag::set_verbose(config.verbose);
    sys::ensure_stdio_open().map_err(Error::os("opening /dev/null for closed stdio"))?;
    let state = StateDir::open(config.state_dir.as_deref())?;
    let stem = config
        .name
        .clone()
        .unwrap_or_else(|| format!("pid-{}", Pid::current()));
    let registration = Registration::take(state, stem)?;
    match start(&config, &registration) {
        Ok(parts) => Ok(Supervisor::new(&config, registration, parts).run()),
        Err(e) => {
            registration.remove();
            Err(e)
        }
    }
}

/// What exists once the server has started.
struct Started {
    signals: Signals,
    owners: Vec<Owner>,
    watch: OwnerWatch,
    record: Record,
    ready: Option<ReadyWatch>,
    containment: Containment,
}

fn start(config: &RunConfig, registration: &Registration) -> Result<Started, Error> {
    sys::become_child_subreaper().map_err(Error::os("prctl(PR_SET_CHILD_SUBREAPER)"))?;
    let signals = Signals::install().map_err(Error::os("installing signal handlers"))?;
    let method = WatchMethod::choose(config.watch_method)?;
    let owners = owner::resolve(&config.owners)?;
    let mut watch = OwnerWatch::new(method);
    for owner in &owners {
        diag::note(format_args!(
            "owner pid {} (start time {})",
            owner.pid, owner.start.0
        ));
        watch.add(*owner);
    }
    let me = Pid::current();
    let my_start = sys::proc_info(me)
        .map(|i| i.start)
        .ok_or_else(|| Error::os("reading /proc/self/stat")(std::io::Error::other("no entry")))?;
    let containment = Containment::choose(config.contain, me, my_start)?;
    let leader = spawn::spawn_server(config, &record::tree_marker(me, my_start), &containment)?;
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
    let server_start = sys::proc_info(leader).map_or(my_start, |i| i.start);
    let ready = match config.port {
        Some(port) => Some(
            ReadyWatch::start(Probe::new(&config.host, port, config.health.as_deref()))
                .map_err(Error::os("starting the readiness probe"))?,
        ),
        None => None,
    };
    let supervisor = SupervisorId {
        pid: me,
        start: my_start,
    };
    let server = ServerId {
        pid: leader,
        pgid: leader,
        start: server_start,
    };
    let record = new_record(
        config,
        supervisor,
        server,
        &owners,
        ready.is_some(),
        &containment,
    );
    registration.save(&record);
    Ok(Started {
        signals,
        owners,
        watch,
        record,
        ready,
        containment,
    })
}

/// The record of a supervisor that has just started its server.
fn new_record(
    config: &RunConfig,
    supervisor: SupervisorId,
    server: ServerId,
    owners: &[Owner],
    probing: bool,
    containment: &Containment,
) -> Record {
    let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
    Record {
        version: record::RECORD_VERSION,
        name: config.name.clone(),
        supervisor,
        server,
        command: std::iter::once(&config.program)
            .chain(&config.args)
            .map(|a| text(a))
            .collect(),
        cwd: std::env::current_dir()
            .map(|d| text(d.as_os_str()))
            .unwrap_or_default(),
        port: config.port,
        url: config.port.map(|port| url(&config.host, port)),
        owners: owners.to_vec(),
        started_at: record::rfc3339(SystemTime::now()),
        state: if probing {
            RecordState::Starting
        } else {
            RecordState::Ready
        },
        log: config.log.as_ref().map(|p| text(p.as_os_str())),
        contain: containment.kind(),
        cgroup: containment.cgroup_path(),
    }
}

/// `http://HOST:PORT`, with an IPv6 host in brackets.
pub fn url(host: &str, port: u16) -> String {
    format!("http://{}:{port}", url_host(host))
}

fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

struct Supervisor {
    registration: Registration,
    record: Record,
    linger: Duration,
    /// Whether the server has ever had an owner (`--owner none`: runs until stopped).
    owned: bool,
    leases: Leases,
    watch: OwnerWatch,
    signals: Signals,
    ready: Option<ReadyWatch>,
    tree: ServerTree,
    teardown: Teardown,
    linger_until: Option<Instant>,
    cause: Option<Cause>,
    /// A SIGCHLD arrived since the children were last looked at. Reaping reads our
    /// children, so it is done on that event (and during teardown), not on every wake.
    child_event: bool,
}

impl Supervisor {
    fn new(config: &RunConfig, registration: Registration, started: Started) -> Supervisor {
        Supervisor {
            tree: ServerTree::new(started.record.server.pid, started.containment),
            registration,
            record: started.record,
            linger: config.linger,
            owned: !started.owners.is_empty(),
            leases: Leases::new(started.owners),
            watch: started.watch,
            signals: started.signals,
            ready: started.ready,
            teardown: Teardown::new(config.grace),
            linger_until: None,
            cause: None,
            child_event: true,
        }
    }

    fn run(mut self) -> u8 {
        loop {
            let now = Instant::now();
            if std::mem::take(&mut self.child_event) || self.teardown.has_begun() {
                self.check_server(now);
            }
            self.check_owners(now);
            self.teardown.advance(now, &mut self.tree);
            if let Phase::Finished { clean } = self.teardown.phase() {
                return self.finish(clean);
            }
            let ready_now = self.wait(now);
            for signal in self.signals.drain() {
                self.on_signal(signal, Instant::now());
            }
            if ready_now {
                self.on_ready();
            }
            for connection in self.registration.control.accept_pending() {
                self.on_request(connection, Instant::now());
            }
        }
    }

    /// Sleeps until a signal, an owner's exit, a request, readiness, or the next
    /// timer. Returns whether the readiness probe reported.
    fn wait(&self, now: Instant) -> bool {
        let timeout = [
            self.watch.next_check(),
            self.linger_until.map(|t| t.saturating_duration_since(now)),
            self.teardown.next_check(now),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut fds: Vec<BorrowedFd<'_>> = vec![self.signals.fd(), self.registration.control.fd()];
        let ready_at = self.ready.as_ref().map(|ready| {
            fds.push(ready.fd());
            fds.len() - 1
        });
        fds.extend(self.watch.fds());
        fds.extend(self.tree.wake_fds());
        match sys::poll_readable(&fds, timeout) {
            Ok(readable) => ready_at.is_some_and(|at| readable[at]),
            Err(e) => {
                // poll fails only for bad arguments or lack of memory; a bounded
                // pause keeps the loop alive and checking.
                diag::say(format_args!("poll failed: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                false
            }
        }
    }

    fn on_signal(&mut self, signal: libc::c_int, now: Instant) {
        if signal == libc::SIGCHLD {
            self.child_event = true;
            return;
        }
        if !signals::is_terminating(signal) {
            diag::note(format_args!("forwarding {}", signals::name(signal)));
            self.tree.forward(signal);
            return;
        }
        if self.teardown.has_begun() {
            diag::note(format_args!(
                "{} during teardown: SIGKILL now",
                signals::name(signal)
            ));
            self.teardown.escalate(now, &mut self.tree);
            return;
        }
        diag::note(format_args!(
            "{}: forwarding, then tearing down",
            signals::name(signal)
        ));
        // Teardown sends SIGTERM itself; sending it twice would look like an
        // impatient second request to servers that count them.
        if signal != libc::SIGTERM {
            self.tree.forward(signal);
        }
        self.start_teardown(Cause::Signal(signal), now);
    }

    fn on_ready(&mut self) {
        self.ready = None;
        if self.record.state == RecordState::Starting {
            diag::note("server is ready");
            self.record.state = RecordState::Ready;
            self.registration.save(&self.record);
        }
    }

    fn on_request(&mut self, connection: Connection, now: Instant) {
        let reply = match &connection.request {
            Err(refusal) => Reply::error(refusal.clone()),
            Ok(request) => self.handle(request.clone(), now),
        };
        diag::note(format_args!(
            "control {:?}: ok={}",
            connection.request, reply.ok
        ));
        connection.reply(&reply);
    }

    fn handle(&mut self, request: Request, now: Instant) -> Reply {
        match request {
            Request::Status => {}
            // A second stop is impatience, like a second signal: SIGKILL now.
            Request::Stop if self.teardown.has_begun() => {
                self.teardown.escalate(now, &mut self.tree)
            }
            Request::Stop => self.start_teardown(Cause::Stop, now),
            Request::Attach { .. } | Request::Release { .. } if self.teardown.has_begun() => {
                return Reply::error("stopping: the server is being torn down");
            }
            Request::Attach { owners } => {
                let mut found = Vec::new();
                for &pid in &owners {
                    match Owner::observe(pid) {
                        Some(owner) => found.push(owner),
                        None => return Reply::error(format!("owner pid {pid} is not running")),
                    }
                }
                for owner in found {
                    if self.leases.add(owner) {
                        diag::note(format_args!("attached owner pid {}", owner.pid));
                        self.watch.add(owner);
                    }
                }
                self.owned = true;
                self.linger_until = None;
                self.save_owners();
            }
            Request::Release { owner: Some(pid) } => match self.leases.remove(pid) {
                Some(owner) => {
                    diag::note(format_args!("released owner pid {pid}"));
                    self.leases_gone(&[owner]);
                }
                None => return Reply::error(format!("pid {pid} is not an owner")),
            },
            Request::Release { owner: None } => {
                let gone = self.leases.clear();
                diag::note(format_args!("released all {} owners", gone.len()));
                self.owned = true;
                self.leases_gone(&gone);
            }
        }
        Reply::ok(self.record.clone())
    }

    /// After leases were dropped: stop watching those owners, record who is left.
    fn leases_gone(&mut self, gone: &[Owner]) {
        self.watch.remove(gone);
        self.save_owners();
    }

    fn save_owners(&mut self) {
        self.record.owners = self.leases.owners().to_vec();
        self.registration.save(&self.record);
    }

    fn check_server(&mut self, now: Instant) {
        self.tree.reap_orphans();
        if !self.teardown.has_begun() && self.tree.leader_exited() {
            diag::note(format_args!("server pid {} exited", self.tree.leader()));
            self.start_teardown(Cause::ServerExited, now);
        }
    }

    fn check_owners(&mut self, now: Instant) {
        if !self.owned || self.teardown.has_begun() {
            return;
        }
        let gone = self.leases.sweep(sys::proc_info);
        for owner in &gone {
            diag::note(format_args!("owner pid {} is gone", owner.pid));
        }
        if !gone.is_empty() {
            self.leases_gone(&gone);
        }
        if !self.leases.is_empty() {
            return;
        }
        let deadline = *self.linger_until.get_or_insert_with(|| {
            if !self.linger.is_zero() {
                diag::note(format_args!(
                    "no owner left; lingering for {:?}",
                    self.linger
                ));
            }
            now + self.linger
        });
        if now >= deadline {
            diag::note("no owner left: tearing down");
            self.start_teardown(Cause::OwnersGone, now);
        }
    }

    fn start_teardown(&mut self, cause: Cause, now: Instant) {
        if self.cause.is_none() {
            self.cause = Some(cause);
            self.ready = None;
            self.record.state = RecordState::Stopping;
            self.registration.save(&self.record);
        }
        self.teardown.begin(now, &mut self.tree);
    }

    /// Reaps the leader and everything left, removes the record, socket and lock,
    /// and turns the cause into an exit code.
    fn finish(self, clean: bool) -> u8 {
        if !clean {
            diag::say("some processes of the server's tree survived SIGKILL; giving up on them");
        }
        let status: Option<ExitStatus> = self.tree.reap_leader();
        self.tree.reap_orphans();
        self.tree.close();
        self.registration.remove();
        diag::note(format_args!(
            "server status: {status:?}; cause: {:?}",
            self.cause
        ));
        match (self.cause, status) {
            (Some(Cause::OwnersGone | Cause::Stop), _) => exit::SUCCESS,
            (_, Some(status)) => exit::from_status(status),
            (_, None) => exit::INTERNAL,
        }
    }
}
