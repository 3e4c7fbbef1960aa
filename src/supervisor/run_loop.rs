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
use std::time::{Duration, Instant};

use crate::config::RunConfig;
use crate::control::{ClientId, Clients, Refusal, Reply};
use crate::diag;
use crate::error::{self};
use crate::exit;
use crate::guard::Guard;
use crate::handoff::{Event, Reporter};
use crate::idle::IdleClock;
use crate::lifecycle::{self, Action, Cause, Input, Rules, Stage};
use crate::owner::Leases;
use crate::ready::{Endpoint, Watch};
use crate::signals::{self, Signals};
use crate::state::record::{Record, RecordState};
use crate::state::registration::Registration;
use crate::sys::{self, Interest, Signal, Waitable};
use crate::teardown::{Phase, Teardown, Tree};
use crate::tree::ServerTree;
use crate::watch::OwnerWatch;

use super::Started;

pub(super) struct Supervisor {
    pub(super) registration: Registration,
    pub(super) clients: Clients,
    /// Requests answered once the server is ready (or refused when teardown
    /// begins first).
    pub(super) waiting: Vec<ClientId>,
    /// `up`, waiting for `ready` or `failed` (the foreground `run`: nobody).
    pub(super) reporter: Reporter,
    pub(super) record: Record,
    pub(super) stage: Stage,
    pub(super) rules: Rules,
    pub(super) leases: Leases,
    pub(super) watch: OwnerWatch,
    pub(super) signals: Signals,
    pub(super) ready: Option<Watch>,
    /// `--idle-timeout`, if given.
    pub(super) idle_timeout: Option<Duration>,
    /// Runs from readiness until teardown when `--idle-timeout` is given.
    pub(super) idle: Option<IdleClock>,
    pub(super) tree: ServerTree,
    pub(super) teardown: Teardown,
    /// A SIGCHLD arrived since the children were last looked at. Reaping reads our
    /// children, so it is done on that event (and during teardown), not on every wake.
    pub(super) child_event: bool,
    /// Start-up pages were given back ([`sys::release_startup_pages`]).
    pub(super) started_up: bool,
    /// Where the server accepts connections, for telling a server that
    /// daemonized and for `--idle-timeout`.
    pub(super) endpoint: Option<Endpoint>,
    /// The server daemonized: its leader exited 0 and left the tree running,
    /// which is followed until it ends by itself or a rule tears it down.
    pub(super) following: bool,
    /// The guard (`crate::guard`), while it lives.
    pub(super) guard: Option<Guard>,
}

/// Which of the loop's sources were ready after a `poll`.
#[derive(Default)]
struct Woken {
    pub(super) state_dir: bool,
    pub(super) guard: bool,
    /// The server's exit handle (where its exit sends no SIGCHLD).
    pub(super) server_exited: bool,
}

impl Supervisor {
    pub(super) fn new(
        config: &RunConfig,
        registration: Registration,
        started: Started,
        reporter: Reporter,
    ) -> Supervisor {
        Supervisor {
            reporter,
            tree: ServerTree::new(
                started.server,
                started.containment,
                started.me,
                started.subreaper,
                started.guard.as_ref().map(Guard::pid),
            ),
            guard: started.guard,
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
            endpoint: config.ready.endpoint().cloned(),
            following: false,
        }
    }

    pub(super) fn run(mut self) -> i32 {
        if self.ready.is_none() {
            // Ready once exec'd (`--ready exec`, or nothing to probe).
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
            if woken.guard && self.guard.as_mut().is_some_and(Guard::has_gone) {
                diag::say("the guard process died: tearing down");
                self.guard = None;
                self.apply(Input::GuardGone, Instant::now());
            }
            for signal in self.signals.drain() {
                self.on_signal(signal, Instant::now());
            }
            let tree = &self.tree;
            if self
                .ready
                .as_mut()
                .is_some_and(|watch| watch.advance(Instant::now(), |pid| tree.contains(pid)))
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
                .and_then(Watch::next_wake)
                .map(|t| t.saturating_duration_since(now)),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut sources: Vec<(Waitable<'_>, Interest)> = vec![
            (self.signals.waitable(), Interest::Read),
            (self.registration.socket().waitable(), Interest::Read),
        ];
        let guard = push_read(
            &mut sources,
            self.guard.iter().map(Guard::waitable).collect(),
        );
        sources.extend(self.ready.as_ref().and_then(Watch::waitable));
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
                guard: woke[guard].iter().any(|&w| w),
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

    pub(super) fn on_signal(&mut self, signal: Signal, now: Instant) {
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
    pub(super) fn apply(&mut self, input: Input, now: Instant) {
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

    pub(super) fn announce_ready(&mut self, now: Instant) {
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
    pub(super) fn begin_teardown(&mut self, now: Instant) {
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
    pub(super) fn check_server(&mut self, now: Instant) {
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
    /// has an endpoint, its leader exited 0, processes of its tree run on, and,
    /// once it was ready, something still accepts there (before readiness the
    /// watch goes on, as for any server).
    pub(super) fn daemonized(&mut self) -> bool {
        let Some(endpoint) = &self.endpoint else {
            return false;
        };
        self.tree.leader_succeeded()
            && self.tree.has_live_members()
            && (!self.stage.is_ready() || endpoint.accepts())
    }

    pub(super) fn check_owners(&mut self, now: Instant) {
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

    /// Counts the endpoint's established connections when the idle clock wants a
    /// sample, and tears down once it has been idle for `--idle-timeout`.
    pub(super) fn check_idle(&mut self, now: Instant) {
        let (Some(clock), Some(endpoint)) = (&mut self.idle, &self.endpoint) else {
            return;
        };
        if !clock.sample_due(now) {
            return;
        }
        let tree = &mut self.tree;
        let (counted, place) = match endpoint {
            Endpoint::Tcp { port, .. } => (
                sys::established_connections(*port, || tree.pids()),
                format!("port {port}"),
            ),
            Endpoint::Socket(path) => (
                sys::socket_connections(path.path()),
                format!("socket {path}"),
            ),
        };
        let idle = match counted {
            Ok(count) => clock.observe(count, now),
            Err(e) => {
                diag::note(format_args!(
                    "cannot count the connections on {place} (taken as busy): {e}"
                ));
                clock.unknown(now);
                false
            }
        };
        if idle {
            diag::note(format_args!(
                "{place} had no established connection for {:?}",
                self.idle_timeout.unwrap_or_default()
            ));
            self.apply(Input::Idle, now);
        }
    }

    /// Reaps the leader and everything left, removes the record, socket and lock,
    /// and turns the cause into an exit code.
    pub(super) fn finish(mut self, clean: bool) -> i32 {
        if !clean {
            diag::say("some processes of the server's tree survived SIGKILL; giving up on them");
        }
        let status: Option<ExitStatus> = self.tree.reap_leader();
        self.tree.reap_orphans();
        self.tree.close();
        self.registration.remove();
        if let Some(guard) = self.guard.take() {
            guard.dismiss();
        }
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
fn failure_before_ready(cause: Option<Cause>, code: i32) -> Event {
    let (error, exit_status, kind) = match cause {
        Some(Cause::ServerExited) | None => (
            format!("the server exited before it was ready (exit status {code})"),
            Some(code),
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
        Some(Cause::GuardGone) => (
            "the supervisor's guard died before the server was ready".into(),
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

/// Adds `waitables` to a poll set, waited on for reading; returns where they are.
fn push_read<'a>(
    sources: &mut Vec<(Waitable<'a>, Interest)>,
    waitables: Vec<Waitable<'a>>,
) -> std::ops::Range<usize> {
    let start = sources.len();
    sources.extend(waitables.into_iter().map(|w| (w, Interest::Read)));
    start..sources.len()
}
