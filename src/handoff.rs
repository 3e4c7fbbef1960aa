//! The `__supervise` handshake between `up` and the supervisor it starts
//! (docs/DESIGN.md, "The `__supervise` handshake").
//!
//! `up` validates the command line once and resolves the owners once (PID and start
//! time). It then starts `ocwrap __supervise` with one end of a channel
//! (`sys::HandoffChannel`: a socket pair as descriptor 3 on Unix, an inherited pipe
//! on Windows) and writes one JSON line on it: the [`Handoff`], the config and the
//! owners exactly as validated. Nothing is parsed again, and an owner whose PID was
//! reused in between is not taken for the owner (its start time differs, so the
//! supervisor finds it gone). The supervisor answers on the same channel with
//! [`Event`] lines: `registered` once it holds the name, then `ready`, or `failed`.
//! It closes the channel after `ready`; after `failed` it keeps it until it exits,
//! so `up` knows the tree is gone when it reads the end of it. `up` blocks on these
//! answers: no file is polled.

use std::io;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::owner::Owner;
use crate::state::record::{MAX_RECORD, Record};
use crate::sys::HandoffChannel;

/// The hidden subcommand that runs a supervisor handed off by `up`.
pub const SUBCOMMAND: &str = "__supervise";

/// How long the supervisor waits for `up` to send the handoff.
const HANDOFF_WAIT: Duration = Duration::from_secs(10);

/// Longest line either side reads: a config with a long argv, or a record.
const MAX_LINE: u64 = 4 * MAX_RECORD;

/// What `up` hands the supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub struct Handoff {
    pub config: RunConfig,
    /// The owners as `up` resolved them: PID and start time.
    pub owners: Vec<Owner>,
}

/// What the supervisor tells `up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// It holds the name: concurrent `up`s may now attach to it.
    Registered,
    /// The server is ready.
    Ready { record: Box<Record> },
    /// It gave up before the server was ready. `exit_status` is the server's
    /// status when the server exited (or could not be started: 126/127), else null.
    Failed {
        error: String,
        exit_status: Option<i32>,
        /// The error's kind (`crate::error::kind`).
        kind: String,
    },
}

/// The supervisor's end of the channel.
#[derive(Debug)]
pub struct Reporter {
    channel: Option<HandoffChannel>,
}

impl Reporter {
    /// Reads the handoff from the channel `up` passed us (descriptor 3 on Unix).
    pub fn receive() -> io::Result<(Handoff, Reporter)> {
        let mut channel = HandoffChannel::take()?;
        let line = channel.read_line_until(MAX_LINE, Instant::now() + HANDOFF_WAIT)?;
        let handoff = serde_json::from_slice(&line)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok((
            handoff,
            Reporter {
                channel: Some(channel),
            },
        ))
    }

    /// A reporter that tells nobody (the foreground `run`).
    pub fn none() -> Reporter {
        Reporter { channel: None }
    }

    /// Sends one event. `up` may be gone already (its own timeout, or killed):
    /// then nobody listens, and that is fine. The channel is a socket pair with
    /// room for far more than one event, so this write does not wait on `up`.
    pub fn send(&mut self, event: &Event) {
        let Some(channel) = &mut self.channel else {
            return;
        };
        if let Ok(mut line) = serde_json::to_vec(event) {
            line.push(b'\n');
            let _ = channel.write_line(&line);
        }
    }

    /// Sends `ready` and closes the channel: `up` returns, we go on.
    pub fn ready(&mut self, record: &Record) {
        self.send(&Event::Ready {
            record: Box::new(record.clone()),
        });
        self.channel = None;
    }

    /// Whether someone still waits for `ready` or `failed`.
    pub fn is_waiting(&self) -> bool {
        self.channel.is_some()
    }
}

/// `up`'s end of the channel.
#[derive(Debug)]
pub struct Channel {
    ours: HandoffChannel,
}

impl Channel {
    pub fn new(ours: HandoffChannel) -> Channel {
        Channel { ours }
    }

    pub fn send(&mut self, handoff: &Handoff) -> io::Result<()> {
        let mut line = serde_json::to_vec(handoff).map_err(io::Error::other)?;
        line.push(b'\n');
        self.ours.write_line(&line)
    }

    /// The next event, waiting until `deadline`. `Ok(None)`: the supervisor closed
    /// the channel (it exited) without another word; `Err` of kind `WouldBlock` or
    /// `TimedOut`: the deadline passed.
    pub fn next(&mut self, deadline: Instant) -> io::Result<Option<Event>> {
        let line = self.ours.read_line_until(MAX_LINE, deadline)?;
        if line.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&line)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}
