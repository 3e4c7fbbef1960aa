//! ocwrap's own diagnostics: one line at a time to stderr, through a writer
//! thread, so that a reader that stalls never blocks the caller for long.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError, mpsc};
use std::time::Duration;

/// Writes one diagnostic line to stderr without letting a stalled reader block the
/// caller for long.
///
/// Windows cannot say whether a pipe write would block (a pipe's free-space figure
/// shrinks by the size of the reader's pending read, so a reader that waits reads
/// as "full"). So lines are written by one writer thread, and the caller waits for
/// its line at most [`STDERR_WAIT`] (so that a command's last words reach a reader
/// before it exits). While a line is stuck in that thread (nobody reads stderr),
/// further lines are dropped at once, as on Unix when stderr is not writable.
pub fn write_stderr_line(line: &[u8]) {
    static WRITER: OnceLock<Option<StderrWriter>> = OnceLock::new();
    static BUSY: AtomicBool = AtomicBool::new(false);
    let writer = WRITER.get_or_init(|| {
        let (lines, receive) = mpsc::channel::<Vec<u8>>();
        let (ack, done) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("stderr".into())
            .spawn(move || {
                for line in receive {
                    let _ = io::stderr().lock().write_all(&line);
                    // Acknowledged before the next caller may get in, so that the
                    // next caller drains this ack instead of taking it for its own.
                    let _ = ack.send(());
                    BUSY.store(false, Ordering::SeqCst);
                }
            })
            .ok()
            .map(|_| StderrWriter {
                lines,
                done: Mutex::new(done),
            })
    });
    let Some(writer) = writer else {
        return;
    };
    if BUSY.swap(true, Ordering::SeqCst) {
        return;
    }
    let done = writer.done.lock().unwrap_or_else(PoisonError::into_inner);
    while done.try_recv().is_ok() {}
    if writer.lines.send(line.to_vec()).is_err() {
        BUSY.store(false, Ordering::SeqCst);
        return;
    }
    let _ = done.recv_timeout(STDERR_WAIT);
}

/// How long a diagnostic line may take to be written (see [`write_stderr_line`]).
const STDERR_WAIT: Duration = Duration::from_millis(100);

/// The stderr writer thread's queue, and its word that a line is out.
#[derive(Debug)]
struct StderrWriter {
    lines: mpsc::Sender<Vec<u8>>,
    done: Mutex<mpsc::Receiver<()>>,
}
