//! Whether a supervisor sleeps for good: blocked in poll(2) with no timeout, as
//! `/proc/PID/syscall` shows it, and its context switches while it idles. Unix
//! only (Linux's `/proc`); Windows has no such view of another process.

use std::io::Write;
use std::sync::mpsc::channel;
use std::time::Duration;

use ocwrap::process::Pid;
use ocwrap::sys;

use super::{DEADLINE, Proc, eventually};

/// Whether `pid` is blocked in poll with no timeout, as `/proc/PID/syscall` shows
/// it: in the system call libc's `poll(fds, n, -1)` makes, with the timeout
/// argument that call gives. Both depend on the architecture (x86_64 has poll(2),
/// number 7, given -1; aarch64 has only ppoll(2), number 73, which libc's poll
/// gives a NULL timeout), so they are not written here but learnt once, at run
/// time, from a thread of this process blocked in that very call
/// ([`infinite_poll`]).
pub fn sleeps_in_poll_forever(pid: Pid) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/syscall")) else {
        return false;
    };
    let fields: Vec<&str> = text.split_whitespace().collect();
    let forever = infinite_poll();
    match fields.as_slice() {
        [number, _, _, timeout, ..] => {
            *number == forever.number && forever.means_no_timeout(timeout)
        }
        _ => false,
    }
}

/// How a thread blocked in libc's `poll(fds, 1, -1)` shows in `/proc/…/syscall`
/// on this machine: the system call's number and its third argument, the timeout.
pub struct PollForever {
    pub number: String,
    pub timeout: String,
}

impl PollForever {
    /// Whether `timeout`, the third argument of a call with this number, asks for
    /// no timeout. A -1 is an `int` (poll(2)): the kernel reads its low 32 bits,
    /// and what the upper half of the register holds depends on the calling code,
    /// so only the low half is compared. Otherwise (ppoll(2)'s NULL timespec) the
    /// whole argument is.
    pub fn means_no_timeout(&self, timeout: &str) -> bool {
        let value = |hex: &str| u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok();
        match (value(&self.timeout), value(timeout)) {
            (Some(forever), Some(given)) if forever as u32 == u32::MAX => given as u32 == u32::MAX,
            (Some(forever), Some(given)) => given == forever,
            _ => false,
        }
    }
}

/// Learns [`PollForever`] once per process: a thread calls libc's `poll` on an
/// empty pipe with a timeout of -1, and the one thread of this process whose
/// `/proc/self/task/TID/syscall` names that thread's own `pollfd` (its address)
/// and a count of 1 is it, blocked in the call. No event says when it has entered
/// the kernel, so [`eventually`] looks. The write that wakes it ends the thread.
pub fn infinite_poll() -> &'static PollForever {
    static LEARNT: std::sync::OnceLock<PollForever> = std::sync::OnceLock::new();
    LEARNT.get_or_init(|| {
        use std::os::fd::AsRawFd;
        let (reader, mut writer) = std::io::pipe().expect("a pipe");
        let (address_tx, address) = channel();
        let sleeper = std::thread::spawn(move || {
            let mut pollfd = libc::pollfd {
                fd: reader.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let _ = address_tx.send(format!("{:#x}", (&raw mut pollfd).addr()));
            // SAFETY: one valid pollfd, which lives for the call.
            unsafe { libc::poll(&raw mut pollfd, 1, -1) }
        });
        let address = address
            .recv_timeout(DEADLINE)
            .expect("the poller's pollfd address");
        let mut seen: Option<Vec<String>> = None;
        eventually(
            "a thread of this test shows its poll(fds, 1, -1) in /proc",
            || {
                seen = own_threads_in_syscalls()
                    .into_iter()
                    .find(|f| f.get(1) == Some(&address) && f.get(2).is_some_and(|n| n == "0x1"));
                seen.is_some()
            },
        );
        writer.write_all(b"x").expect("wake the poller");
        let woken = sleeper.join().expect("the poller");
        assert_eq!(woken, 1, "poll(fds, 1, -1) on the pipe returned {woken}");
        let fields = seen.expect("seen in poll");
        PollForever {
            number: fields[0].clone(),
            timeout: fields[3].clone(),
        }
    })
}

/// `/proc/self/task/*/syscall` of this process's threads, split into fields (a
/// running thread shows `running`; a thread that ended meanwhile is left out).
fn own_threads_in_syscalls() -> Vec<Vec<String>> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("list /proc/self/task");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("syscall")).ok())
        .map(|text| text.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Asserts that the supervisor `supervisor` (pinned as `proc`) does not wake up
/// for `window`: counting starts once its loop sleeps for good, blocked in poll(2)
/// with no timeout (before that, start-up work may still end in a sleep of its
/// own), and its voluntary context switches must not change.
pub fn assert_no_wake_ups(proc: &Proc, window: Duration) {
    let pid = proc.pid;
    eventually("ocwrap sleeps in poll with no timeout", || {
        sleeps_in_poll_forever(pid)
    });
    let before = sys::fixture::voluntary_context_switches(pid).expect("read ocwrap's switches");
    proc.assert_survives(window, "an idle ocwrap");
    let after = sys::fixture::voluntary_context_switches(pid).expect("read ocwrap's switches");
    assert_eq!(
        after, before,
        "voluntary context switches over {window:?} of idling"
    );
}
