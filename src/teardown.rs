//! Teardown: the one bounded state machine that ends a server's tree (docs/DESIGN.md, "Lifecycle", rule 6).
//!
//! `Running` → (`begin`) SIGTERM + SIGCONT to the whole tree → `Terminating` until
//! the tree is empty or the grace ends → SIGKILL → `Killing` until the tree is empty
//! (SIGKILL is re-sent to stragglers that forked late) or [`KILL_WAIT`] passes →
//! `Finished`. A second terminating signal during the grace (`escalate`) skips
//! straight to SIGKILL. The machine does not know what a process is: it acts on a
//! [`Tree`], so it is tested below with a fake one and no real processes.
//!
//! Nothing here polls on a timer: between deadlines the caller sleeps on the
//! tree's [`Tree::waitables`] (a member exited, the tree may be empty) and calls
//! [`Teardown::advance`] when one is ready or [`Teardown::next_check`] has passed.

use std::time::{Duration, Instant};

use crate::sys::{self, Signal, Waitable};

/// How long the tree may take to vanish after SIGKILL. Only a process stuck in
/// uninterruptible sleep (a dead NFS mount, a device) survives that long; we then
/// give up on it rather than hang, and say so.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// What teardown acts on: every live process of the server's tree.
pub trait Tree {
    /// Sends each of `signals`, in order, to every live process of the tree. The
    /// machine repeats only SIGKILL, to reach processes forked late.
    fn signal_all(&mut self, signals: &[Signal]);
    /// Whether no live process of the tree is left.
    fn is_empty(&mut self) -> bool;
    /// What becomes ready when the tree changes (a member exits, the tree
    /// empties); teardown sleeps on these between deadlines.
    fn waitables(&self) -> Vec<Waitable<'_>>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nothing has asked for teardown yet.
    Running,
    /// SIGTERM and SIGCONT sent; waiting for the tree to empty until `deadline`.
    Terminating { deadline: Instant },
    /// SIGKILL sent; waiting for the tree to empty until `deadline`.
    Killing { deadline: Instant },
    /// Done: `clean` is false when some process outlived [`KILL_WAIT`].
    Finished { clean: bool },
}

#[derive(Debug)]
pub struct Teardown {
    grace: Duration,
    phase: Phase,
}

impl Teardown {
    pub fn new(grace: Duration) -> Teardown {
        Teardown {
            grace,
            phase: Phase::Running,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn has_begun(&self) -> bool {
        self.phase != Phase::Running
    }

    /// Starts teardown; does nothing if it has already started.
    pub fn begin(&mut self, now: Instant, tree: &mut impl Tree) {
        if self.phase != Phase::Running {
            return;
        }
        if tree.is_empty() {
            self.phase = Phase::Finished { clean: true };
            return;
        }
        // A stopped process cannot act on SIGTERM until it is continued.
        tree.signal_all(&[sys::SIGTERM, sys::SIGCONT]);
        self.phase = Phase::Terminating {
            deadline: now + self.grace,
        };
        self.advance(now, tree);
    }

    /// A second terminating signal: SIGKILL now, whatever the grace says.
    pub fn escalate(&mut self, now: Instant, tree: &mut impl Tree) {
        match self.phase {
            Phase::Running => {
                self.begin(now, tree);
                self.escalate(now, tree);
            }
            Phase::Terminating { .. } => self.kill(now, tree),
            Phase::Killing { .. } | Phase::Finished { .. } => {}
        }
    }

    /// Moves on if the tree emptied or a deadline passed.
    pub fn advance(&mut self, now: Instant, tree: &mut impl Tree) {
        match self.phase {
            Phase::Running | Phase::Finished { .. } => {}
            Phase::Terminating { deadline } => {
                if tree.is_empty() {
                    self.phase = Phase::Finished { clean: true };
                } else if now >= deadline {
                    self.kill(now, tree);
                }
            }
            Phase::Killing { deadline } => {
                if tree.is_empty() {
                    self.phase = Phase::Finished { clean: true };
                } else if now >= deadline {
                    self.phase = Phase::Finished { clean: false };
                } else {
                    tree.signal_all(&[sys::SIGKILL]);
                }
            }
        }
    }

    /// How long the caller may sleep on the tree's wake-up descriptors before
    /// calling [`Teardown::advance`]: until the current deadline.
    pub fn next_check(&self, now: Instant) -> Option<Duration> {
        match self.phase {
            Phase::Running | Phase::Finished { .. } => None,
            Phase::Terminating { deadline } | Phase::Killing { deadline } => {
                Some(deadline.saturating_duration_since(now))
            }
        }
    }

    /// Drives a begun teardown to its end in this thread, sleeping on the tree's
    /// wake-up descriptors and deadlines (for callers with no event loop of their
    /// own, such as `gc`). Returns whether the tree emptied.
    pub fn run_to_end(&mut self, tree: &mut impl Tree) -> bool {
        loop {
            let now = Instant::now();
            self.advance(now, tree);
            if let Phase::Finished { clean } = self.phase {
                return clean;
            }
            let pause = self.next_check(now);
            if let Err(e) = sys::poll_readable(&tree.waitables(), pause) {
                // Only bad arguments or lack of memory: a bounded pause keeps going.
                crate::diag::note(format_args!("poll failed: {e}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn kill(&mut self, now: Instant, tree: &mut impl Tree) {
        tree.signal_all(&[sys::SIGKILL]);
        self.phase = Phase::Killing {
            deadline: now + KILL_WAIT,
        };
        self.advance(now, tree);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree of `alive` processes that die of the signals in `fatal`.
    struct FakeTree {
        alive: usize,
        fatal: Vec<Signal>,
        received: Vec<Signal>,
    }

    impl FakeTree {
        fn new(alive: usize, fatal: &[Signal]) -> FakeTree {
            FakeTree {
                alive,
                fatal: fatal.to_vec(),
                received: Vec::new(),
            }
        }
    }

    impl Tree for FakeTree {
        fn signal_all(&mut self, signals: &[Signal]) {
            for &signal in signals {
                self.received.push(signal);
                if self.fatal.contains(&signal) {
                    self.alive = 0;
                }
            }
        }
        fn is_empty(&mut self) -> bool {
            self.alive == 0
        }
        fn waitables(&self) -> Vec<Waitable<'_>> {
            Vec::new()
        }
    }

    const GRACE: Duration = Duration::from_secs(5);

    #[test]
    fn a_tree_that_honours_sigterm_never_sees_sigkill() {
        let now = Instant::now();
        let mut tree = FakeTree::new(3, &[sys::SIGTERM, sys::SIGKILL]);
        let mut teardown = Teardown::new(GRACE);
        teardown.begin(now, &mut tree);
        assert_eq!(teardown.phase(), Phase::Finished { clean: true });
        assert_eq!(tree.received, [sys::SIGTERM, sys::SIGCONT]);
    }

    #[test]
    fn sigterm_ignored_means_sigkill_when_the_grace_ends_and_not_before() {
        let now = Instant::now();
        let mut tree = FakeTree::new(2, &[sys::SIGKILL]);
        let mut teardown = Teardown::new(GRACE);
        teardown.begin(now, &mut tree);
        teardown.advance(now + GRACE - Duration::from_millis(1), &mut tree);
        assert_eq!(
            teardown.phase(),
            Phase::Terminating {
                deadline: now + GRACE
            }
        );
        assert!(!tree.received.contains(&sys::SIGKILL));
        teardown.advance(now + GRACE, &mut tree);
        assert_eq!(teardown.phase(), Phase::Finished { clean: true });
        assert_eq!(tree.received, [sys::SIGTERM, sys::SIGCONT, sys::SIGKILL]);
    }

    #[test]
    fn a_second_signal_during_the_grace_kills_at_once() {
        let now = Instant::now();
        let mut tree = FakeTree::new(1, &[sys::SIGKILL]);
        let mut teardown = Teardown::new(Duration::from_secs(3600));
        teardown.begin(now, &mut tree);
        teardown.escalate(now, &mut tree);
        assert_eq!(teardown.phase(), Phase::Finished { clean: true });
        assert_eq!(tree.received.last(), Some(&sys::SIGKILL));
    }

    #[test]
    fn an_empty_tree_is_finished_without_a_signal() {
        let mut tree = FakeTree::new(0, &[]);
        let mut teardown = Teardown::new(GRACE);
        teardown.begin(Instant::now(), &mut tree);
        assert_eq!(teardown.phase(), Phase::Finished { clean: true });
        assert!(tree.received.is_empty());
    }

    #[test]
    fn an_unkillable_tree_is_given_up_after_kill_wait() {
        let now = Instant::now();
        let mut tree = FakeTree::new(1, &[]);
        let mut teardown = Teardown::new(Duration::ZERO);
        teardown.begin(now, &mut tree);
        assert!(matches!(teardown.phase(), Phase::Killing { .. }));
        teardown.advance(now + KILL_WAIT / 2, &mut tree);
        assert!(matches!(teardown.phase(), Phase::Killing { .. }));
        teardown.advance(now + KILL_WAIT, &mut tree);
        assert_eq!(teardown.phase(), Phase::Finished { clean: false });
        assert!(tree.received.iter().filter(|&&s| s == sys::SIGKILL).count() >= 2);
    }

    #[test]
    fn begin_twice_changes_nothing() {
        let now = Instant::now();
        let mut tree = FakeTree::new(1, &[]);
        let mut teardown = Teardown::new(GRACE);
        teardown.begin(now, &mut tree);
        teardown.begin(now, &mut tree);
        assert_eq!(tree.received, [sys::SIGTERM, sys::SIGCONT]);
    }

    #[test]
    fn between_events_teardown_sleeps_until_the_deadline_and_no_less() {
        let now = Instant::now();
        let mut tree = FakeTree::new(1, &[]);
        let mut teardown = Teardown::new(Duration::from_secs(3));
        assert_eq!(teardown.next_check(now), None);
        teardown.begin(now, &mut tree);
        assert_eq!(teardown.next_check(now), Some(Duration::from_secs(3)));
        teardown.escalate(now, &mut tree);
        assert_eq!(teardown.next_check(now), Some(KILL_WAIT));
    }

    #[test]
    fn run_to_end_wakes_at_the_deadlines() {
        let mut tree = FakeTree::new(1, &[sys::SIGKILL]);
        let mut teardown = Teardown::new(Duration::from_millis(20));
        let began = Instant::now();
        teardown.begin(began, &mut tree);
        assert!(teardown.run_to_end(&mut tree));
        assert!(began.elapsed() >= Duration::from_millis(20));
        assert_eq!(tree.received, [sys::SIGTERM, sys::SIGCONT, sys::SIGKILL]);
    }
}
