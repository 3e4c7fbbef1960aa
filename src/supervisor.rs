//! The foreground supervisor behind `ocwrap run`: one event loop that waits on
//! signals, owners, control connections, the state dir and readiness, and drives
//! [`Teardown`] when a rule says the tree must go (docs/DESIGN.md, "Lifecycle").
//!
//! The loop sleeps in `poll(2)` on the signal self-pipe, the owners' pidfds, the
//! control socket and its open connections, the state-dir watch, (while
//! starting) the readiness probe and (while tearing down) the tree's wake-up
//! descriptor; its timeout is the nearest of the owner poll interval (poll method
//! only), the end of `--linger`, the next `--idle-timeout` sample (only with that
//! option), the readiness probe's next attempt, the registration's next check
//! (the state-dir watch's start, a repair, a record write to try again), the
//! teardown deadline and the control connections' deadlines. With
//! pidfds and nothing happening it has no timeout at all, so an idle supervisor
//! costs no wake-ups. (On Windows every source is a handle, the server's exit
//! included: `sys::Waitable`.) Nothing in the loop blocks: a control client is
//! served only as far as its socket allows at that moment, so no client can delay
//! the reaction to an owner's death, a signal or `stop`.

use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

use crate::config::RunConfig;
use crate::contain::Containment;
use crate::control::{ClientId, Clients, Refusal, Reply, Request};
use crate::diag;
use crate::duration::deadline_after;
use crate::error::{self, Error};
use crate::exit;
use crate::handoff::{Event, Reporter};
use crate::identity::{Name, ServerId, SupervisorId};
use crate::idle::IdleClock;
use crate::lifecycle::{self, Action, Cause, Input, Rules, Stage};
use crate::owner::{self, Leases, Owner};
use crate::process::Pid;
use crate::ready::{Probe, ReadyProbe};
use crate::signals::{self, Signals};
use crate::spawn;
use crate::state::StateDir;
use crate::state::record::{self, Record, RecordState};
use crate::state::registration::Registration;
use crate::state::sweep;
use crate::sys::{self, Interest, ServerChild, Signal, Waitable};
use crate::teardown::{Phase, Teardown, Tree};
use crate::tree::ServerTree;
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
pub fn run(config: RunConfig) -> Result<u8, Error> {
    supervise(config, Owners::FromConfig, Reporter::none())
}

/// Runs the supervisor that `up` started (`ocwrap __supervise`), with the config
/// and owners `up` handed over, and tells `up` how it went.
pub fn run_handed_off() -> Result<u8, Error> {
    let (handoff, reporter) =
        Reporter::receive().map_err(Error::os("reading the handoff from ocwrap up"))?;
    supervise(handoff.config, Owners::Given(handoff.owners), reporter)
}

fn supervise(config: RunConfig, owners: Owners, mut reporter: Reporter) -> Result<u8, Error> {
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
) -> Result<u8, Error> {
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
    let mut registration = Registration::take(state, stem.to_string(), me)?;
    reporter.send(&Event::Registered);
    match start(&config, owners, me, &mut registration) {
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
struct Started {
    server: ServerChild,
    signals: Signals,
    owners: Vec<Owner>,
    watch: OwnerWatch,
    record: Record,
    ready: Option<ReadyProbe>,
    containment: Containment,
}

fn start(
    config: &RunConfig,
    owners: Owners,
    me: SupervisorId,
    registration: &mut Registration,
) -> Result<Started, Error> {
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
    let child = spawn::spawn_server(config, me.marker(), &containment)?;
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
    let ready = config.port.map(|port| {
        ReadyProbe::new(
            Probe::new(&config.host, port, config.health.as_deref()),
            Instant::now(),
        )
    });
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
    })
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
        port: config.port,
        url: config.port.map(|port| url(&config.host, port)),
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
    clients: Clients,
    /// Requests answered once the server is ready (or refused when teardown
    /// begins first).
    waiting: Vec<ClientId>,
    /// `up`, waiting for `ready` or `failed` (the foreground `run`: nobody).
    reporter: Reporter,
    record: Record,
    stage: Stage,
    rules: Rules,
    leases: Leases,
    watch: OwnerWatch,
    signals: Signals,
    ready: Option<ReadyProbe>,
    /// `--idle-timeout`, if given.
    idle_timeout: Option<Duration>,
    /// Runs from readiness until teardown when `--idle-timeout` is given.
    idle: Option<IdleClock>,
    tree: ServerTree,
    teardown: Teardown,
    /// A SIGCHLD arrived since the children were last looked at. Reaping reads our
    /// children, so it is done on that event (and during teardown), not on every wake.
    child_event: bool,
    /// Start-up pages were given back ([`sys::release_startup_pages`]).
    started_up: bool,
    /// A TCP connect to the port (`--host`, resolved at start), for telling a
    /// server that daemonized.
    port_probe: Option<Probe>,
    /// The server daemonized: its leader exited 0 and left the tree running,
    /// which is followed until it ends by itself or a rule tears it down.
    following: bool,
}

/// Which of the loop's sources were ready after a `poll`.
#[derive(Default)]
struct Woken {
    state_dir: bool,
    /// The server's exit handle (where its exit sends no SIGCHLD).
    server_exited: bool,
}

impl Supervisor {
    fn new(
        config: &RunConfig,
        registration: Registration,
        started: Started,
        reporter: Reporter,
    ) -> Supervisor {
        Supervisor {
            reporter,
            tree: ServerTree::new(started.server, started.containment),
            registration,
            clients: Clients::default(),
            waiting: Vec::new(),
            stage: Stage::START,
            rules: Rules {
                owned: !started.owners.is_empty(),
                linger: config.linger,
            },
            record: started.record,
            leases: Leases::new(started.owners),
            watch: started.watch,
            signals: started.signals,
            ready: started.ready,
            idle_timeout: config.idle_timeout,
            idle: None,
            teardown: Teardown::new(config.grace),
            child_event: true,
            started_up: false,
            port_probe: config.port.map(|port| Probe::new(&config.host, port, None)),
            following: false,
        }
    }

    fn run(mut self) -> u8 {
        if self.ready.is_none() {
            // No port to probe: ready once started.
            self.apply(Input::Ready, Instant::now());
        }
        loop {
            let now = Instant::now();
            if std::mem::take(&mut self.child_event) || self.teardown.has_begun() {
                self.check_server(now);
            }
            self.check_owners(now);
            self.check_idle(now);
            self.teardown.advance(now, &mut self.tree);
            if let Phase::Finished { clean } = self.teardown.phase() {
                return self.finish(clean);
            }
            if !self.started_up
                && self.record.state == RecordState::Ready
                && self.registration.is_watched()
            {
                // Start-up is over (ready, state-dir watch running): from here on
                // the loop idles, so give back the code pages start-up mapped.
                self.started_up = true;
                sys::release_startup_pages();
            }
            let woken = self.wait(now);
            self.child_event |= woken.server_exited;
            for signal in self.signals.drain() {
                self.on_signal(signal, Instant::now());
            }
            if self
                .ready
                .as_mut()
                .is_some_and(|probe| probe.advance(Instant::now()))
            {
                self.apply(Input::Ready, Instant::now());
            }
            if woken.state_dir {
                self.registration.on_disturbance(Instant::now());
            }
            self.registration.check(Instant::now(), &self.record);
            let requests = self
                .clients
                .service(self.registration.socket_mut(), Instant::now());
            for (client, request) in requests {
                self.on_request(client, request, Instant::now());
            }
        }
    }

    /// Sleeps until a signal, an owner's exit, a control connection, a change in
    /// the state dir, readiness, or the next timer.
    fn wait(&self, now: Instant) -> Woken {
        let timeout = [
            self.watch.next_check(),
            self.stage.next_wake(now),
            self.teardown.next_check(now),
            self.clients
                .next_deadline()
                .map(|t| t.saturating_duration_since(now)),
            self.registration.next_check(now),
            self.idle
                .as_ref()
                .map(|clock| clock.next_sample().saturating_duration_since(now)),
            self.ready
                .as_ref()
                .and_then(ReadyProbe::next_wake)
                .map(|t| t.saturating_duration_since(now)),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut sources: Vec<(Waitable<'_>, Interest)> = vec![
            (self.signals.waitable(), Interest::Read),
            (self.registration.socket().waitable(), Interest::Read),
        ];
        sources.extend(self.ready.as_ref().and_then(ReadyProbe::waitable));
        let dir = push_read(&mut sources, self.registration.watch_waitables());
        sources.extend(self.watch.waitables().map(|w| (w, Interest::Read)));
        sources.extend(self.clients.waitables());
        let tree = self.tree.waitables();
        sources.extend(tree.into_iter().map(|w| (w, Interest::Read)));
        // Where the server's exit sends no signal (Windows), its handle wakes us,
        // until its exit was seen: an exited process stays ready.
        let exit = if self.stage.is_stopping() || self.following {
            0..0
        } else {
            push_read(
                &mut sources,
                self.tree.exit_waitable().into_iter().collect(),
            )
        };
        match sys::poll(&sources, timeout) {
            Ok(woke) => Woken {
                state_dir: woke[dir].iter().any(|&w| w),
                server_exited: woke[exit].iter().any(|&w| w),
            },
            Err(e) => {
                // poll fails only for bad arguments or lack of memory; a bounded
                // pause keeps the loop alive and checking.
                diag::say(format_args!("poll failed: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                Woken::default()
            }
        }
    }

    fn on_signal(&mut self, signal: Signal, now: Instant) {
        if signal == sys::SIGCHLD {
            self.child_event = true;
            return;
        }
        if !signals::is_terminating(signal) {
            diag::note(format_args!("forwarding {}", signals::name(signal)));
            self.tree.forward(signal);
            return;
        }
        diag::note(format_args!(
            "{}: {}",
            signals::name(signal),
            if self.stage.is_stopping() {
                "SIGKILL now"
            } else {
                "tearing down"
            }
        ));
        self.apply(Input::Signal(signal), now);
    }

    /// Moves the lifecycle on and carries out what it says.
    fn apply(&mut self, input: Input, now: Instant) {
        let (stage, actions) = self.stage.step(input, now, &self.rules);
        self.stage = stage;
        for action in actions {
            match action {
                Action::AnnounceReady => self.announce_ready(now),
                Action::Forward(signal) => self.tree.forward(signal),
                Action::BeginTeardown => self.begin_teardown(now),
                Action::Escalate => self.teardown.escalate(now, &mut self.tree),
            }
        }
    }

    fn announce_ready(&mut self, now: Instant) {
        diag::note("server is ready");
        self.ready = None;
        self.idle = self
            .idle_timeout
            .map(|timeout| IdleClock::start(timeout, now));
        self.record.state = RecordState::Ready;
        self.registration.save(&self.record);
        self.answer_waiting(&Reply::ok(self.record.clone()));
        self.reporter.ready(&self.record);
    }

    /// Signals first, writes after: the tree gets its SIGTERM before the record
    /// says `stopping`, so no file system delay stands between the decision and
    /// the signal.
    fn begin_teardown(&mut self, now: Instant) {
        let cause = self.stage.cause();
        if let Some(cause) = cause {
            diag::note(format_args!("tearing down: {cause}"));
        }
        self.ready = None;
        self.idle = None;
        self.teardown.begin(now, &mut self.tree);
        self.answer_waiting(&Reply::refused(
            Refusal::Stopping,
            "stopping: the server is being torn down",
        ));
        self.record.state = RecordState::Stopping;
        self.record.stop_cause = cause.map(Cause::recorded);
        self.registration.save(&self.record);
    }

    /// Answers the requests held until the server is ready.
    fn answer_waiting(&mut self, reply: &Reply) {
        for client in std::mem::take(&mut self.waiting) {
            self.clients.reply(client, reply);
        }
    }

    fn on_request(&mut self, client: ClientId, request: Request, now: Instant) {
        diag::note(format_args!("control {request:?}"));
        let waits = request.waits_for_ready() && !self.stage.is_ready();
        let reply = if let Some(refusal) = namespace_refusal(&request, self.clients.peer(client)) {
            refusal
        } else if waits && self.stage.is_stopping() {
            // Torn down before it was ready: it never will be.
            Reply::refused(Refusal::Stopping, "stopping: the server is being torn down")
        } else if waits && !self.clients.can_hold(client) {
            // Refused before anything is done: an attach refused here adds no lease.
            Reply::refused(
                Refusal::Busy,
                "busy: the replies that may wait for readiness are all taken; try again",
            )
        } else {
            self.handle(&request, now)
        };
        if let Some(error) = &reply.error {
            diag::note(format_args!("control refused: {error}"));
        }
        if reply.ok
            && waits
            && self
                .clients
                .hold(client, deadline_after(now, request.hold()))
        {
            let clients = &self.clients;
            self.waiting.retain(|&id| clients.is_open(id));
            self.waiting.push(client);
        } else {
            self.clients.reply(client, &reply);
        }
    }

    fn handle(&mut self, request: &Request, now: Instant) -> Reply {
        match *request {
            Request::Status { .. } => {}
            // A second stop is impatience, like a second signal: SIGKILL now.
            Request::Stop => self.apply(Input::Stop, now),
            Request::Attach { .. } | Request::Release { .. } if self.stage.is_stopping() => {
                return Reply::refused(
                    Refusal::Stopping,
                    "stopping: the server is being torn down",
                );
            }
            Request::Attach { ref owners, .. } => {
                if let Err((kind, message)) = self.attach(owners) {
                    return Reply::refused(kind, message);
                }
                self.apply(Input::Leases(self.leases.owners().len()), now);
            }
            Request::Release {
                owner: Some(named), ..
            } => match self.leases.release(named) {
                Some(owner) => {
                    diag::note(format_args!("released owner pid {}", owner.pid));
                    self.leases_gone(&[owner]);
                    self.apply(Input::Leases(self.leases.owners().len()), now);
                }
                None => {
                    return Reply::refused(
                        Refusal::NotOwner,
                        format!("pid {} is not an owner", named.pid),
                    );
                }
            },
            Request::Release { owner: None, .. } => {
                let gone = self.leases.clear();
                diag::note(format_args!("released all {} owners", gone.len()));
                self.leases_gone(&gone);
                self.apply(Input::Leases(0), now);
            }
        }
        Reply::ok(self.record.clone())
    }

    /// Adds leases for `owners`: all of them or, with a refusal, none. Each must
    /// still be the process the client named (same start time), must be able to
    /// exit, and must not belong to the server's own tree. A lease an owner
    /// already holds is not written again.
    fn attach(&mut self, owners: &[Owner]) -> Result<(), (Refusal, String)> {
        if owners.is_empty() {
            return Err((
                Refusal::NoOwners,
                "attach needs at least one owner pid".into(),
            ));
        }
        let too_many = || {
            (
                Refusal::TooManyOwners,
                format!("a supervisor keeps at most {MAX_LEASES} leases"),
            )
        };
        if owners.len() > MAX_LEASES {
            return Err(too_many());
        }
        let mut found = Vec::new();
        for &named in owners {
            let pid = named.pid;
            if let Some(why) = owner::immortal(pid) {
                return Err((
                    Refusal::ImmortalOwner,
                    format!("owner pid {pid} can never exit ({why})"),
                ));
            }
            if !named.is_alive() {
                return Err((
                    Refusal::OwnerNotRunning,
                    format!(
                        "owner pid {pid} is not running (it exited, or its PID now belongs to another process)"
                    ),
                ));
            }
            if self.tree.contains(pid) {
                return Err((
                    Refusal::OwnerInTree,
                    format!(
                        "owner pid {pid} belongs to the server's own tree, which could then never end"
                    ),
                ));
            }
            if !found.contains(&named) {
                found.push(named);
            }
        }
        found.retain(|owner| !self.leases.owners().contains(owner));
        if self.leases.owners().len() + found.len() > MAX_LEASES {
            return Err(too_many());
        }
        if found.is_empty() {
            return Ok(());
        }
        for owner in found {
            diag::note(format_args!("attached owner pid {}", owner.pid));
            self.leases.add(owner);
            self.watch.add(owner);
        }
        self.save_owners();
        Ok(())
    }

    /// After leases were dropped: stop watching those owners, record who is left.
    fn leases_gone(&mut self, gone: &[Owner]) {
        self.watch.remove(gone);
        if !gone.is_empty() {
            self.save_owners();
        }
    }

    fn save_owners(&mut self) {
        self.record.owners = self.leases.owners().to_vec();
        self.registration.save(&self.record);
    }

    fn check_server(&mut self, now: Instant) {
        self.tree.reap_orphans();
        if self.stage.is_stopping() {
            return;
        }
        if self.following {
            // Its last process is our child or orphan: its exit is a SIGCHLD.
            if !self.tree.has_live_members() {
                diag::note("the daemonized server's tree has ended by itself");
                self.apply(Input::ServerExited, now);
            }
            return;
        }
        if !self.tree.leader_exited() {
            return;
        }
        diag::note(format_args!("server pid {} exited", self.tree.leader()));
        if self.daemonized() {
            diag::note(
                "it exited 0 and left its tree running (it daemonized): the tree is followed",
            );
            self.following = true;
            self.record.daemonized = true;
            self.registration.save(&self.record);
        } else {
            self.apply(Input::ServerExited, now);
        }
    }

    /// Whether the server daemonized (docs/DESIGN.md, "Lifecycle", rule 9): it
    /// has a port, its leader exited 0, processes of its tree run on, and, once
    /// it was ready, one of them still accepts on the port (before readiness the
    /// probe goes on, as for any server).
    fn daemonized(&mut self) -> bool {
        if self.port_probe.is_none() {
            return false;
        }
        self.tree.leader_succeeded()
            && self.tree.has_live_members()
            && (!self.stage.is_ready() || self.port_probe.as_ref().is_some_and(Probe::check))
    }

    fn check_owners(&mut self, now: Instant) {
        if self.stage.is_stopping() {
            return;
        }
        let gone = self.leases.sweep(sys::proc_lookup);
        for owner in &gone {
            diag::note(format_args!("owner pid {} is gone", owner.pid));
        }
        if !gone.is_empty() {
            self.leases_gone(&gone);
            self.apply(Input::Leases(self.leases.owners().len()), now);
        }
        self.apply(Input::Tick, now);
    }

    /// Counts the port's established connections when the idle clock wants a
    /// sample, and tears down once it has been idle for `--idle-timeout`.
    fn check_idle(&mut self, now: Instant) {
        let (Some(clock), Some(port)) = (&mut self.idle, self.record.port) else {
            return;
        };
        if !clock.sample_due(now) {
            return;
        }
        let idle = match sys::established_connections(port) {
            Ok(count) => clock.observe(count, now),
            Err(e) => {
                diag::note(format_args!(
                    "cannot count the connections on port {port} (taken as busy): {e}"
                ));
                clock.unknown(now);
                false
            }
        };
        if idle {
            diag::note(format_args!(
                "port {port} had no established connection for {:?}",
                self.idle_timeout.unwrap_or_default()
            ));
            self.apply(Input::Idle, now);
        }
    }

    /// Reaps the leader and everything left, removes the record, socket and lock,
    /// and turns the cause into an exit code.
    fn finish(mut self, clean: bool) -> u8 {
        if !clean {
            diag::say("some processes of the server's tree survived SIGKILL; giving up on them");
        }
        let status: Option<ExitStatus> = self.tree.reap_leader();
        self.tree.reap_orphans();
        self.tree.close();
        self.registration.remove();
        let cause = self.stage.cause();
        diag::note(format_args!("server status: {status:?}; cause: {cause:?}"));
        let code = lifecycle::exit_code(cause, status.map(exit::from_status));
        if self.reporter.is_waiting() {
            self.reporter.send(&failure_before_ready(cause, code));
        }
        code
    }
}

/// What `up` is told when the tree ended before the server was ready.
fn failure_before_ready(cause: Option<Cause>, code: u8) -> Event {
    let (error, exit_status, kind) = match cause {
        Some(Cause::ServerExited) | None => (
            format!("the server exited before it was ready (exit status {code})"),
            Some(i32::from(code)),
            error::kind::SERVER_EXITED,
        ),
        Some(Cause::OwnersGone) => (
            "every owner was gone before the server was ready".into(),
            None,
            error::kind::OWNERS_GONE,
        ),
        Some(Cause::Stop) => (
            "stopped before the server was ready".into(),
            None,
            error::kind::STOPPED,
        ),
        Some(Cause::Idle) => (
            "idle before the server was ready".into(),
            None,
            error::kind::STOPPED,
        ),
        Some(Cause::Signal(signal)) => (
            format!("{} before the server was ready", signals::name(signal)),
            None,
            error::kind::STOPPED,
        ),
    };
    Event::Failed {
        error,
        exit_status,
        kind: kind.to_string(),
    }
}

/// Refuses a request that names PIDs (an `attach`, a `release` of one owner) from
/// a client in another PID namespace: the PID the client says it has must be the
/// one the kernel gives for the peer, translated into ours (none when the peer
/// is outside our namespace). Its PIDs would name other processes here.
fn namespace_refusal(request: &Request, peer: Option<Pid>) -> Option<Reply> {
    let said = match *request {
        Request::Attach { client, .. } => Some(client),
        Request::Release {
            owner: Some(_),
            client,
        } => match client {
            Some(client) => Some(client),
            None => {
                return Some(Reply::refused(
                    Refusal::BadRequest,
                    "bad request: a release that names an owner must name its client",
                ));
            }
        },
        _ => None,
    };
    match said {
        Some(client) if peer != Some(client) => Some(Reply::refused(
            Refusal::ForeignNamespace,
            format!(
                "refused: the client runs in another PID namespace (it is pid {client} there, {} here), so the PIDs it names cannot be read here; run it in the supervisor's namespace",
                peer.map_or("not visible".to_string(), |p| format!("pid {p}"))
            ),
        )),
        _ => None,
    }
}

/// Adds `waitables` to a poll set, waited on for reading; returns where they are.
fn push_read<'a>(
    sources: &mut Vec<(Waitable<'a>, Interest)>,
    waitables: Vec<Waitable<'a>>,
) -> std::ops::Range<usize> {
    let start = sources.len();
    sources.extend(waitables.into_iter().map(|w| (w, Interest::Read)));
    start..sources.len()
}
