//! The supervisor's lifecycle as a state machine (docs/DESIGN.md, "Lifecycle"):
//! starting → ready → stopping → done, with `--linger` in between. Its transitions
//! are one pure function from (stage, input) to (stage, actions), so the rules —
//! readiness, the lease rule and linger, `stop`, `--idle-timeout`, terminating
//! signals, the server's own exit — are unit-tested without processes, as teardown
//! is. When the port counts as idle is [`crate::idle`]'s business. What an action
//! means for processes and files is the supervisor's business; how the tree is
//! ended is [`crate::teardown`]'s.

use std::time::{Duration, Instant};

use crate::duration::deadline_after;
use crate::exit;
use crate::signals;
use crate::state::record::StopCause;
use crate::sys::{self, Signal};

/// Why the tree is being torn down; it decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The last lease is gone (after `--linger`): our own rule, exit 0.
    OwnersGone,
    /// `ocwrap stop`: our own rule, exit 0.
    Stop,
    /// The port had no established connection for `--idle-timeout`: our own
    /// rule, exit 0.
    Idle,
    /// A terminating signal to ocwrap: exit with the server's status.
    Signal(Signal),
    /// The server exited by itself: exit with its status.
    ServerExited,
    /// The supervisor's guard died (`crate::guard`): exit with the server's
    /// status, as for a signal.
    GuardGone,
}

impl Cause {
    /// The cause as the record gives it (`stop_cause`).
    pub fn recorded(self) -> StopCause {
        match self {
            Cause::OwnersGone => StopCause::OwnersGone,
            Cause::Stop => StopCause::Stop,
            Cause::Idle => StopCause::Idle,
            Cause::Signal(_) => StopCause::Signal,
            Cause::ServerExited => StopCause::ServerExited,
            Cause::GuardGone => StopCause::GuardGone,
        }
    }
}

/// As `-v` says it: the record's word, and the signal's name for a signal.
impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = self.recorded().as_str();
        match self {
            Cause::Signal(signal) => write!(f, "{word} {}", signals::name(*signal)),
            _ => f.write_str(word),
        }
    }
}

/// Where a supervisor is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The server runs. `ready` once it answered (or at once without a port);
    /// `linger_until` is set while no lease is left and the lease rule applies.
    Running {
        ready: bool,
        linger_until: Option<Instant>,
    },
    /// Teardown is under way for `cause`; it ends when the tree is gone.
    Stopping { cause: Cause, was_ready: bool },
}

/// What does not change during a supervisor's life.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// Whether the lease rule applies: the server was started with owners. One
    /// started without (`--owner none`) runs until stopped, whatever leases it
    /// gets later.
    pub owned: bool,
    pub linger: Duration,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The server is ready (its port accepts, its health path answers 2xx).
    Ready,
    /// The number of leases after a change (an owner gone, attached, released).
    Leases(usize),
    /// Time passed: a linger may have run out.
    Tick,
    /// `ocwrap stop`.
    Stop,
    /// The port has had no established connection for `--idle-timeout`.
    Idle,
    /// SIGINT, SIGTERM, SIGHUP or SIGQUIT to ocwrap.
    Signal(Signal),
    /// The server (the group leader) exited.
    ServerExited,
    /// The supervisor's guard died.
    GuardGone,
}

/// What the supervisor must do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Record `ready`, answer the requests waiting for it, tell `up`.
    AnnounceReady,
    /// Pass this terminating signal on to the server's group before teardown.
    Forward(Signal),
    /// Begin teardown (signals first), then record `stopping` and refuse the
    /// requests still waiting for readiness.
    BeginTeardown,
    /// SIGKILL now: a second terminating signal or `stop` during teardown.
    Escalate,
}

impl Stage {
    pub const START: Stage = Stage::Running {
        ready: false,
        linger_until: None,
    };

    pub fn is_stopping(&self) -> bool {
        matches!(self, Stage::Stopping { .. })
    }

    pub fn is_ready(&self) -> bool {
        match *self {
            Stage::Running { ready, .. } => ready,
            Stage::Stopping { was_ready, .. } => was_ready,
        }
    }

    pub fn cause(&self) -> Option<Cause> {
        match *self {
            Stage::Stopping { cause, .. } => Some(cause),
            Stage::Running { .. } => None,
        }
    }

    /// How long the loop may sleep before a [`Input::Tick`] is due.
    pub fn next_wake(&self, now: Instant) -> Option<Duration> {
        match *self {
            Stage::Running {
                linger_until: Some(until),
                ..
            } => Some(until.saturating_duration_since(now)),
            _ => None,
        }
    }

    /// The transition function.
    pub fn step(self, input: Input, now: Instant, rules: &Rules) -> (Stage, Vec<Action>) {
        let Stage::Running {
            ready,
            linger_until,
        } = self
        else {
            return match input {
                Input::Stop | Input::Signal(_) => (self, vec![Action::Escalate]),
                _ => (self, Vec::new()),
            };
        };
        let stop = |cause: Cause, mut actions: Vec<Action>| {
            actions.push(Action::BeginTeardown);
            (
                Stage::Stopping {
                    cause,
                    was_ready: ready,
                },
                actions,
            )
        };
        match input {
            Input::Ready if !ready => (
                Stage::Running {
                    ready: true,
                    linger_until,
                },
                vec![Action::AnnounceReady],
            ),
            Input::Ready => (self, Vec::new()),
            Input::Leases(_) if !rules.owned => (self, Vec::new()),
            Input::Leases(n) if n > 0 => (
                Stage::Running {
                    ready,
                    linger_until: None,
                },
                Vec::new(),
            ),
            Input::Leases(_) => {
                let until = linger_until.unwrap_or_else(|| deadline_after(now, rules.linger));
                let lingering = Stage::Running {
                    ready,
                    linger_until: Some(until),
                };
                lingering.step(Input::Tick, now, rules)
            }
            Input::Tick => match linger_until {
                Some(until) if now >= until => stop(Cause::OwnersGone, Vec::new()),
                _ => (self, Vec::new()),
            },
            Input::Stop => stop(Cause::Stop, Vec::new()),
            // Idleness is measured only once the server answers: a slow start is
            // not a lack of clients.
            Input::Idle if ready => stop(Cause::Idle, Vec::new()),
            Input::Idle => (self, Vec::new()),
            // Teardown sends SIGTERM itself; sending it twice would look like an
            // impatient second request to servers that count them.
            Input::Signal(sys::SIGTERM) => stop(Cause::Signal(sys::SIGTERM), Vec::new()),
            Input::Signal(signal) => stop(Cause::Signal(signal), vec![Action::Forward(signal)]),
            Input::ServerExited => stop(Cause::ServerExited, Vec::new()),
            Input::GuardGone => stop(Cause::GuardGone, Vec::new()),
        }
    }
}

/// The exit code of `ocwrap run` once the tree is gone: 0 for our own rules, else
/// the server's status (`code` is its status mapped as a shell does, if known).
pub fn exit_code(cause: Option<Cause>, code: Option<i32>) -> i32 {
    match (cause, code) {
        (Some(Cause::OwnersGone | Cause::Stop | Cause::Idle), _) => i32::from(exit::SUCCESS),
        (_, Some(code)) => code,
        (_, None) => i32::from(exit::INTERNAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNED: Rules = Rules {
        owned: true,
        linger: Duration::ZERO,
    };

    const UNOWNED: Rules = Rules {
        owned: false,
        linger: Duration::ZERO,
    };

    fn run(stage: Stage, inputs: &[Input], now: Instant, rules: &Rules) -> (Stage, Vec<Action>) {
        inputs
            .iter()
            .fold((stage, Vec::new()), |(stage, mut all), &input| {
                let (next, actions) = stage.step(input, now, rules);
                all.extend(actions);
                (next, all)
            })
    }

    #[test]
    fn ready_is_announced_once() {
        let now = Instant::now();
        let (stage, actions) = run(Stage::START, &[Input::Ready, Input::Ready], now, &OWNED);
        assert_eq!(actions, [Action::AnnounceReady]);
        assert!(stage.is_ready());
    }

    #[test]
    fn the_last_lease_gone_tears_down_at_once_without_linger() {
        let now = Instant::now();
        let (stage, actions) = Stage::START.step(Input::Leases(0), now, &OWNED);
        assert_eq!(actions, [Action::BeginTeardown]);
        assert_eq!(stage.cause(), Some(Cause::OwnersGone));
    }

    #[test]
    fn linger_waits_and_a_new_lease_cancels_it() {
        let now = Instant::now();
        let rules = Rules {
            owned: true,
            linger: Duration::from_secs(30),
        };
        let (stage, actions) = Stage::START.step(Input::Leases(0), now, &rules);
        assert!(actions.is_empty());
        assert_eq!(stage.next_wake(now), Some(Duration::from_secs(30)));
        let (stage, actions) = stage.step(Input::Tick, now + Duration::from_secs(29), &rules);
        assert!(actions.is_empty() && !stage.is_stopping());
        // An owner attaches during the linger: no deadline any more.
        let (renewed, _) = stage.step(Input::Leases(1), now, &rules);
        assert_eq!(renewed.next_wake(now), None);
        let (stage, actions) = stage.step(Input::Tick, now + Duration::from_secs(30), &rules);
        assert_eq!(actions, [Action::BeginTeardown]);
        assert_eq!(stage.cause(), Some(Cause::OwnersGone));
    }

    #[test]
    fn a_later_lease_change_does_not_restart_the_linger() {
        let now = Instant::now();
        let rules = Rules {
            owned: true,
            linger: Duration::from_secs(10),
        };
        let (stage, _) = Stage::START.step(Input::Leases(0), now, &rules);
        let (stage, _) = stage.step(Input::Leases(0), now + Duration::from_secs(5), &rules);
        assert_eq!(stage.next_wake(now), Some(Duration::from_secs(10)));
    }

    #[test]
    fn an_unowned_server_ignores_the_lease_rule() {
        let now = Instant::now();
        let (stage, actions) = run(
            Stage::START,
            &[Input::Leases(1), Input::Leases(0), Input::Tick],
            now,
            &UNOWNED,
        );
        assert!(actions.is_empty());
        assert!(!stage.is_stopping());
    }

    #[test]
    fn a_terminating_signal_is_forwarded_first_except_sigterm() {
        let now = Instant::now();
        let (_, actions) = Stage::START.step(Input::Signal(sys::SIGINT), now, &OWNED);
        assert_eq!(
            actions,
            [Action::Forward(sys::SIGINT), Action::BeginTeardown]
        );
        let (stage, actions) = Stage::START.step(Input::Signal(sys::SIGTERM), now, &OWNED);
        assert_eq!(actions, [Action::BeginTeardown]);
        assert_eq!(stage.cause(), Some(Cause::Signal(sys::SIGTERM)));
    }

    #[test]
    fn a_second_stop_or_signal_escalates_and_nothing_else_changes_a_stopping_stage() {
        let now = Instant::now();
        let (stopping, _) = Stage::START.step(Input::Stop, now, &OWNED);
        for input in [Input::Stop, Input::Signal(sys::SIGTERM)] {
            let (stage, actions) = stopping.step(input, now, &OWNED);
            assert_eq!(actions, [Action::Escalate]);
            assert_eq!(stage, stopping);
        }
        for input in [
            Input::Ready,
            Input::Leases(0),
            Input::Tick,
            Input::Idle,
            Input::ServerExited,
            Input::GuardGone,
        ] {
            assert_eq!(stopping.step(input, now, &OWNED), (stopping, Vec::new()));
        }
    }

    #[test]
    fn the_exit_code_follows_the_cause() {
        assert_eq!(exit_code(Some(Cause::OwnersGone), Some(143)), 0);
        assert_eq!(exit_code(Some(Cause::Stop), None), 0);
        assert_eq!(exit_code(Some(Cause::Idle), Some(143)), 0);
        assert_eq!(exit_code(Some(Cause::ServerExited), Some(3)), 3);
        assert_eq!(exit_code(Some(Cause::Signal(sys::SIGINT)), Some(130)), 130);
        assert_eq!(exit_code(Some(Cause::GuardGone), Some(143)), 143);
        assert_eq!(
            exit_code(Some(Cause::ServerExited), None),
            i32::from(exit::INTERNAL)
        );
    }

    #[test]
    fn idle_tears_a_ready_server_down_whoever_owns_it() {
        let now = Instant::now();
        for rules in [OWNED, UNOWNED] {
            let (stage, actions) = run(Stage::START, &[Input::Ready, Input::Idle], now, &rules);
            assert_eq!(actions, [Action::AnnounceReady, Action::BeginTeardown]);
            assert_eq!(stage.cause(), Some(Cause::Idle));
            assert!(stage.is_ready());
        }
    }

    #[test]
    fn a_dead_guard_tears_down_whoever_owns_the_server_and_whatever_its_stage() {
        let now = Instant::now();
        for (rules, before) in [(OWNED, &[][..]), (UNOWNED, &[Input::Ready][..])] {
            let (stage, _) = run(Stage::START, before, now, &rules);
            let (stage, actions) = stage.step(Input::GuardGone, now, &rules);
            assert_eq!(actions, [Action::BeginTeardown]);
            assert_eq!(stage.cause(), Some(Cause::GuardGone));
            assert_eq!(Cause::GuardGone.to_string(), "guard_gone");
        }
    }

    #[test]
    fn idle_before_ready_changes_nothing() {
        let now = Instant::now();
        assert_eq!(
            Stage::START.step(Input::Idle, now, &OWNED),
            (Stage::START, Vec::new())
        );
    }

    #[test]
    fn causes_are_said_as_the_record_names_them() {
        assert_eq!(Cause::Idle.to_string(), "idle");
        assert_eq!(Cause::OwnersGone.to_string(), "owners_gone");
        assert_eq!(Cause::Signal(sys::SIGINT).to_string(), "signal SIGINT");
        assert_eq!(Cause::ServerExited.recorded(), StopCause::ServerExited);
    }

    #[test]
    fn readiness_before_teardown_is_remembered() {
        let now = Instant::now();
        let (stage, _) = run(Stage::START, &[Input::Ready, Input::Stop], now, &OWNED);
        assert!(stage.is_ready());
        let (stage, _) = Stage::START.step(Input::ServerExited, now, &OWNED);
        assert!(!stage.is_ready());
    }
}
