//! The foreground supervisor behind `ocwrap run`: one event loop that waits on
//! signals and owners, and drives [`Teardown`] when a rule says the tree must go.
//!
//! The loop sleeps in `poll(2)` on the signal self-pipe and the owners' pidfds; its
//! timeout is the nearest of the owner poll interval (poll method only), the end of
//! `--linger`, and the teardown recheck. With pidfds and nothing happening it has no
//! timeout at all, so an idle supervisor costs no wake-ups.

use std::os::fd::BorrowedFd;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::config::RunConfig;
use crate::diag;
use crate::error::Error;
use crate::exit;
use crate::owner::{self, Leases};
use crate::signals::{self, Signals};
use crate::spawn;
use crate::sys;
use crate::teardown::{Phase, Teardown};
use crate::tree::ServerTree;
use crate::watch::{OwnerWatch, WatchMethod};

/// Why the tree is being torn down; it decides ocwrap's exit code (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// The last lease is gone (after `--linger`): our own rule, exit 0.
    OwnersGone,
    /// A terminating signal to ocwrap: exit with the server's status.
    Signal(libc::c_int),
    /// The server exited by itself: exit with its status.
    ServerExited,
}

/// Runs `ocwrap run` to the end and returns the exit code.
pub fn run(config: RunConfig) -> Result<u8, Error> {
    diag::set_verbose(config.verbose);
    sys::ensure_stdio_open().map_err(Error::os("opening /dev/null for closed stdio"))?;
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
    let leader = spawn::spawn_server(&config)?;
    diag::note(format_args!(
        "started {} as pid {leader} in its own {} ({method:?} watch)",
        config.program.to_string_lossy(),
        if config.session {
            "session"
        } else {
            "process group"
        },
    ));
    let supervisor = Supervisor {
        linger: config.linger,
        owned: !owners.is_empty(),
        leases: Leases::new(owners),
        watch,
        signals,
        tree: ServerTree::new(leader),
        teardown: Teardown::new(config.grace),
        linger_until: None,
        cause: None,
        server_exited: false,
    };
    Ok(supervisor.run())
}

struct Supervisor {
    linger: Duration,
    /// Whether the server had owners at all (`--owner none`: it runs until stopped).
    owned: bool,
    leases: Leases,
    watch: OwnerWatch,
    signals: Signals,
    tree: ServerTree,
    teardown: Teardown,
    linger_until: Option<Instant>,
    cause: Option<Cause>,
    server_exited: bool,
}

impl Supervisor {
    fn run(mut self) -> u8 {
        loop {
            let now = Instant::now();
            self.check_server(now);
            self.check_owners(now);
            self.teardown.advance(now, &mut self.tree);
            if let Phase::Finished { clean } = self.teardown.phase() {
                return self.finish(clean);
            }
            self.wait(now);
            for signal in self.signals.drain() {
                self.on_signal(signal, Instant::now());
            }
        }
    }

    /// Sleeps until a signal, an owner's exit, or the next timer.
    fn wait(&self, now: Instant) {
        let timeout = [
            self.watch.next_check(),
            self.linger_until.map(|t| t.saturating_duration_since(now)),
            self.teardown.next_check(now),
        ]
        .into_iter()
        .flatten()
        .min();
        let fds: Vec<BorrowedFd<'_>> = std::iter::once(self.signals.fd())
            .chain(self.watch.fds())
            .collect();
        if let Err(e) = sys::poll_readable(&fds, timeout) {
            // poll fails only for bad arguments or lack of memory; fall back to a
            // bounded sleep so the loop stays alive and keeps checking.
            diag::say(format_args!("poll failed: {e}"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn on_signal(&mut self, signal: libc::c_int, now: Instant) {
        if signal == libc::SIGCHLD {
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

    fn check_server(&mut self, now: Instant) {
        self.tree.reap_orphans();
        if !self.server_exited && self.tree.leader_exited() {
            self.server_exited = true;
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
        self.watch.remove(&gone);
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
        }
        self.teardown.begin(now, &mut self.tree);
    }

    /// Reaps the leader and everything left, and turns the cause into an exit code.
    fn finish(self, clean: bool) -> u8 {
        if !clean {
            diag::say("some processes of the server's tree survived SIGKILL; giving up on them");
        }
        let status: Option<ExitStatus> = self.tree.reap_leader();
        self.tree.reap_orphans();
        diag::note(format_args!(
            "server status: {status:?}; cause: {:?}",
            self.cause
        ));
        match (self.cause, status) {
            (Some(Cause::OwnersGone), _) => exit::SUCCESS,
            (_, Some(status)) => exit::from_status(status),
            (_, None) => exit::INTERNAL,
        }
    }
}
