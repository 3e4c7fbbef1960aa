//! The harness's own guarantees, each shown able to fail: a process it cannot pin
//! never counts as gone, the ports it hands out are reserved, and "asleep in poll
//! with no timeout" tells a timed poll apart.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ocwrap::process::Pid;

#[cfg(unix)]
use crate::support::{
    DEADLINE, Launch, PollForever, eventually, infinite_poll, owner, sleeps_in_poll_forever,
};
use crate::support::{Proc, claim_port, free_port};

/// The panic message of `f`, which must panic.
fn panic_of<T>(f: impl FnOnce() -> T) -> String {
    let Err(payload) = catch_unwind(AssertUnwindSafe(f)) else {
        panic!("it did not panic");
    };
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn a_failed_pin_fails_the_test_unless_no_such_process_is_left() {
    // No process has this PID: far above any that Linux (at most 2^22) or Windows
    // hands out. Announced, it counts as gone; one that must run fails the test.
    let nobody = Pid::new(0x7fff_fffc).expect("a PID");
    assert!(
        !Proc::pin_announced(nobody).is_running(),
        "announced, and no such process: gone"
    );
    let message = panic_of(|| Proc::pin(nobody));
    assert!(message.contains("cannot pin"), "{message:?}");
    #[cfg(unix)]
    pins_that_fail_on_unix();
}

/// A thread's ID and a reaped child's PID: neither can be pinned.
#[cfg(unix)]
fn pins_that_fail_on_unix() {
    use std::sync::mpsc::channel;
    // A thread that is not its process's leader: pidfd_open refuses it (EINVAL),
    // as it would a misparsed PID that names a thread, or any pin under EMFILE.
    let (tid_tx, tid) = channel();
    let (stop, stopped) = channel::<()>();
    let thread = std::thread::spawn(move || {
        let me = std::fs::read_link("/proc/thread-self").expect("read /proc/thread-self");
        let tid: i32 = me
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .expect("a TID in /proc/thread-self");
        tid_tx.send(tid).expect("send the TID");
        let _ = stopped.recv();
    });
    let tid = Pid::new(tid.recv_timeout(DEADLINE).expect("the thread's TID")).expect("a TID");
    assert_ne!(tid, Pid::current(), "a thread that is not the leader");
    for message in [
        panic_of(|| Proc::pin(tid)),
        panic_of(|| Proc::pin_announced(tid)),
    ] {
        assert!(message.contains("cannot pin"), "{message:?}");
    }
    stop.send(()).expect("stop the thread");
    thread.join().expect("the thread");

    // A process that has exited and been reaped: ESRCH. Only an announced one
    // counts as gone; one that must run fails the test.
    let mut child = Launch::program("true").spawn();
    let pid = child.pinned.pid;
    child.wait_exit();
    let message = panic_of(|| Proc::pin(pid));
    assert!(message.contains("cannot pin"), "{message:?}");
    assert!(!Proc::pin_announced(pid).is_running(), "gone, once reaped");
}

#[test]
fn free_ports_are_distinct_outside_the_ephemeral_range_and_held() {
    // Where the host does not say (Windows, macOS): both usual ranges, 32768-60999
    // (Linux's, which Wine's programs get) and 49152-65535.
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_else(|_| "32768 65535".into());
    let bounds: Vec<u16> = ephemeral
        .split_whitespace()
        .map(|w| w.parse().expect("a port"))
        .collect();
    let (a, b) = (free_port(), free_port());
    assert_ne!(a, b, "two calls, two ports");
    for port in [a, b] {
        assert!(
            port < bounds[0] || port > bounds[1],
            "{port} is in the ephemeral range {ephemeral:?}"
        );
        // The claim is held: nobody else (a concurrent run) can claim it.
        assert!(claim_port(port).is_none(), "{port} can be claimed again");
        std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("{port} is free to bind: {e}"));
    }
}

#[cfg(unix)] // Linux only: /proc/PID/syscall
#[test]
fn a_supervisor_polling_on_a_timer_is_not_taken_for_one_asleep_for_good() {
    let forever = infinite_poll();
    // The poll method looks at its owner every 200 ms: every poll it sleeps in
    // has a timeout.
    let session = owner();
    let mut run = Launch::ocwrap()
        .args(["--watch-method", "poll", "--owner-pid"])
        .arg(session.pinned.pid.to_string())
        .server(&["tree"])
        .spawn();
    run.expect_line("ready");
    let pid = run.pinned.pid;
    eventually("ocwrap sleeps in poll with a timeout", || {
        assert!(
            !sleeps_in_poll_forever(pid),
            "a supervisor on a 200 ms timer was taken for one asleep for good"
        );
        let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        let fields: Vec<&str> = text.split_whitespace().collect();
        matches!(fields.as_slice(), [number, _, _, timeout, ..]
            if *number == forever.number && !forever.means_no_timeout(timeout))
    });
    eprintln!(
        "poll with no timeout is system call {} with timeout argument {}",
        forever.number, forever.timeout
    );
}

#[cfg(unix)] // Linux only: /proc/PID/syscall
#[test]
fn no_timeout_is_told_apart_in_poll_s_and_in_ppoll_s_encoding() {
    // x86_64: poll(2) takes an int, given -1 (the upper half of the register is
    // whatever the caller left there).
    let poll = PollForever {
        number: "7".into(),
        timeout: "0xffffffff".into(),
    };
    for forever in ["0xffffffff", "0xffffffffffffffff"] {
        assert!(poll.means_no_timeout(forever), "{forever}");
    }
    for timed in ["0xc8", "0x0", "0x7fffffff"] {
        assert!(!poll.means_no_timeout(timed), "{timed}");
    }
    // aarch64: only ppoll(2), given a NULL timespec; a timed one is a pointer.
    let ppoll = PollForever {
        number: "73".into(),
        timeout: "0x0".into(),
    };
    assert!(ppoll.means_no_timeout("0x0"));
    for timed in ["0xffffc2a1e7a0", "0x7ffd5c1b2e40"] {
        assert!(!ppoll.means_no_timeout(timed), "{timed}");
    }
}
