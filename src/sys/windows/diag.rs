//! ocwrap's own diagnostics: one line at a time to stderr, through a writer
//! thread, so that a reader that stalls never blocks the caller for long.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, mpsc};
use std::time::{Duration, Instant};

/// Writes one diagnostic line to stderr without letting a stalled reader block the
/// caller for long.
///
/// Windows cannot say whether a pipe write would block (a pipe's free-space figure
/// shrinks by the size of the reader's pending read, so a reader that waits reads
/// as "full"). So lines are written, in order, by one writer thread, and the
/// caller waits for its line at most [`STDERR_WAIT`] (so that a command's last
/// words reach a reader before it exits). A line that is slow to go out (a busy
/// machine, Wine's pipes) only makes the next ones wait their turn in the queue;
/// once [`MAX_QUEUED`] lines are waiting (nobody reads stderr), further lines are
/// dropped at once, as on Unix when stderr is not writable.
pub fn write_stderr_line(line: &[u8]) {
    static WRITER: OnceLock<Option<StderrWriter>> = OnceLock::new();
    if let Some(writer) = WRITER.get_or_init(|| StderrWriter::start(io::stderr(), STDERR_WAIT)) {
        writer.write_line(line);
    }
}

/// How long a caller waits for its diagnostic line to be written (see
/// [`write_stderr_line`]).
const STDERR_WAIT: Duration = Duration::from_millis(100);

/// How many diagnostic lines may wait to be written before more are dropped: a
/// bound on what a reader that never reads can cost.
const MAX_QUEUED: u64 = 64;

/// The writer thread's queue, how far it has got, and how long a caller waits.
#[derive(Debug)]
struct StderrWriter {
    lines: mpsc::Sender<Vec<u8>>,
    progress: Arc<(Mutex<Progress>, Condvar)>,
    wait: Duration,
}

/// Lines are numbered from 1 as they are queued; `written` is the last one out.
#[derive(Debug, Default)]
struct Progress {
    queued: u64,
    written: u64,
}

impl StderrWriter {
    /// The writer thread, writing to `sink`; `None` where it cannot be started
    /// (then nothing is written).
    fn start(mut sink: impl Write + Send + 'static, wait: Duration) -> Option<StderrWriter> {
        let (lines, receive) = mpsc::channel::<Vec<u8>>();
        let progress = Arc::new((Mutex::new(Progress::default()), Condvar::new()));
        let theirs = Arc::clone(&progress);
        std::thread::Builder::new()
            .name("stderr".into())
            .spawn(move || {
                for line in receive {
                    let _ = sink.write_all(&line);
                    let (state, written) = &*theirs;
                    state.lock().unwrap_or_else(PoisonError::into_inner).written += 1;
                    written.notify_all();
                }
            })
            .ok()?;
        Some(StderrWriter {
            lines,
            progress,
            wait,
        })
    }

    /// Queues `line` (or drops it, when [`MAX_QUEUED`] wait already) and waits
    /// at most `wait` for it to be written.
    fn write_line(&self, line: &[u8]) {
        let (state, written) = &*self.progress;
        let mut progress = state.lock().unwrap_or_else(PoisonError::into_inner);
        if progress.queued - progress.written >= MAX_QUEUED {
            return;
        }
        // Sent under the lock, so the thread takes the lines in their numbers'
        // order.
        if self.lines.send(line.to_vec()).is_err() {
            return;
        }
        progress.queued += 1;
        let number = progress.queued;
        let give_up = Instant::now() + self.wait;
        while progress.written < number {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            progress = written
                .wait_timeout(progress, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stderr whose every write waits for a token from the test (a reader that
    /// is slow, or stalled until the test says), then says what it wrote.
    struct Gated {
        tokens: mpsc::Receiver<()>,
        out: mpsc::Sender<Vec<u8>>,
    }

    impl Write for Gated {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.tokens
                .recv()
                .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
            let _ = self.out.send(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn gated() -> (StderrWriter, mpsc::Sender<()>, mpsc::Receiver<Vec<u8>>) {
        let (tokens, gate) = mpsc::channel();
        let (out, written) = mpsc::channel();
        let writer = StderrWriter::start(Gated { tokens: gate, out }, Duration::from_millis(1))
            .expect("the writer thread");
        (writer, tokens, written)
    }

    #[test]
    fn lines_behind_a_slow_one_wait_their_turn_and_go_out_in_order() {
        let (writer, tokens, written) = gated();
        for line in [&b"one\n"[..], b"two\n", b"three\n"] {
            // Each caller gives up waiting at once: the first line is stuck.
            writer.write_line(line);
        }
        for _ in 0..3 {
            tokens.send(()).unwrap();
        }
        let out: Vec<Vec<u8>> = (0..3)
            .map(|_| {
                written
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a line")
            })
            .collect();
        assert_eq!(out, [&b"one\n"[..], b"two\n", b"three\n"]);
    }

    #[test]
    fn past_the_queue_s_bound_lines_are_dropped() {
        let (writer, tokens, written) = gated();
        for n in 0..MAX_QUEUED + 10 {
            writer.write_line(format!("{n}\n").as_bytes());
        }
        for _ in 0..MAX_QUEUED {
            tokens.send(()).unwrap();
        }
        let out: Vec<String> = (0..MAX_QUEUED)
            .map(|_| {
                written
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a line")
            })
            .map(|line| String::from_utf8(line).unwrap())
            .collect();
        let kept: Vec<String> = (0..MAX_QUEUED).map(|n| format!("{n}\n")).collect();
        assert_eq!(out, kept, "the first {MAX_QUEUED} lines, in order");
        let progress = writer.progress.0.lock().unwrap();
        assert_eq!(
            (progress.queued, progress.written),
            (MAX_QUEUED, MAX_QUEUED),
            "the 10 past the bound were never queued"
        );
    }
}
