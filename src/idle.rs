//! `--idle-timeout`: when the server's port counts as idle. A pure clock over the
//! counts of established connections that the supervisor samples (from the kernel,
//! through [`crate::sys::established_connections`]); what idleness means for the
//! server's life is [`crate::lifecycle`]'s business.
//!
//! The clock starts when the server is ready, so a slow start is not idleness. It is
//! sampled every tenth of the timeout, but at most once a second, and only while it
//! runs: without `--idle-timeout` there is no clock and no wake-up at all. A sample
//! that sees a connection (an event stream counts for as long as it is open) stops
//! the quiet; the first sample that sees none starts it again, so a connection that
//! closes between two samples is taken to have closed at the later one. The port is
//! idle at the first sample at least the timeout after the quiet began: never
//! early, and late by at most one interval.

use std::time::{Duration, Instant};

use crate::duration::deadline_after;

/// Samples are no closer together than this, whatever the timeout.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleClock {
    timeout: Duration,
    interval: Duration,
    /// Since when no connection was seen; `None` while one is open.
    quiet_since: Option<Instant>,
    next_sample: Instant,
}

impl IdleClock {
    /// A clock for a server that became ready at `now`, with no connection seen yet.
    pub fn start(timeout: Duration, now: Instant) -> IdleClock {
        let interval = (timeout / 10).max(MIN_INTERVAL);
        IdleClock {
            timeout,
            interval,
            quiet_since: Some(now),
            next_sample: deadline_after(now, interval),
        }
    }

    /// When the next sample is due.
    pub fn next_sample(&self) -> Instant {
        self.next_sample
    }

    pub fn sample_due(&self, now: Instant) -> bool {
        now >= self.next_sample
    }

    /// Takes a sample made at `now` (`connections` established on the port) and
    /// says whether the port has now been idle for the whole timeout.
    pub fn observe(&mut self, connections: usize, now: Instant) -> bool {
        self.next_sample = deadline_after(now, self.interval);
        if connections > 0 {
            self.quiet_since = None;
            return false;
        }
        let since = *self.quiet_since.get_or_insert(now);
        now.saturating_duration_since(since) >= self.timeout
    }

    /// A sample could not be made: the port counts as busy until one can, since
    /// tearing a server down on a guess is worse than keeping it.
    pub fn unknown(&mut self, now: Instant) {
        self.observe(1, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn samples_every_tenth_of_the_timeout_but_at_most_once_a_second() {
        let now = Instant::now();
        assert_eq!(
            IdleClock::start(Duration::from_secs(60), now).next_sample(),
            now + Duration::from_secs(6)
        );
        assert_eq!(
            IdleClock::start(5 * SECOND, now).next_sample(),
            now + SECOND
        );
        assert_eq!(
            IdleClock::start(Duration::from_millis(300), now).next_sample(),
            now + SECOND
        );
    }

    #[test]
    fn no_connection_at_all_is_idle_once_the_timeout_has_passed_since_ready() {
        let ready = Instant::now();
        let mut clock = IdleClock::start(3 * SECOND, ready);
        assert!(!clock.sample_due(ready));
        assert!(!clock.observe(0, ready + SECOND));
        assert!(!clock.observe(0, ready + 2 * SECOND));
        assert!(clock.observe(0, ready + 3 * SECOND));
    }

    #[test]
    fn an_open_connection_keeps_the_port_busy_and_the_quiet_starts_when_it_is_gone() {
        let ready = Instant::now();
        let mut clock = IdleClock::start(2 * SECOND, ready);
        for s in 1..=10 {
            assert!(!clock.observe(1, ready + s * SECOND), "busy at {s} s");
        }
        // Closed somewhere before the sample at 11 s: quiet from 11 s on.
        assert!(!clock.observe(0, ready + 11 * SECOND));
        assert!(!clock.observe(0, ready + 12 * SECOND));
        assert!(clock.observe(0, ready + 13 * SECOND));
    }

    #[test]
    fn a_connection_seen_during_the_quiet_restarts_it() {
        let ready = Instant::now();
        let mut clock = IdleClock::start(2 * SECOND, ready);
        assert!(!clock.observe(0, ready + SECOND));
        assert!(!clock.observe(2, ready + 2 * SECOND));
        assert!(!clock.observe(0, ready + 3 * SECOND));
        assert!(!clock.observe(0, ready + 4 * SECOND));
        assert!(clock.observe(0, ready + 5 * SECOND));
    }

    #[test]
    fn an_unknown_count_is_busy() {
        let ready = Instant::now();
        let mut clock = IdleClock::start(SECOND, ready);
        clock.unknown(ready + 5 * SECOND);
        assert_eq!(clock.next_sample(), ready + 6 * SECOND);
        assert!(!clock.observe(0, ready + 6 * SECOND));
        assert!(clock.observe(0, ready + 7 * SECOND));
    }
}
