//! Waiting: process handles (the Windows pidfd), the loop's wait sources, sets
//! of them, and `WaitForMultipleObjects` over any number of handles. See
//! `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::os::windows::io::{AsHandle, BorrowedHandle, OwnedHandle};
use std::process::ExitStatus;
use std::time::Duration;

use windows_sys::Win32::Foundation::{
    HANDLE, WAIT_ABANDONED_0, WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Threading::{
    PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE, SetEvent,
    WaitForMultipleObjects,
};

use super::proc::open_process;
use super::{is_signalled, manual_event, raw, wait_millis};
use crate::process::Pid;

/// A handle on one process (the Windows counterpart of a pidfd): it keeps naming
/// that process, and keeps its PID from being reused, for as long as it is open.
/// It is signalled once the process has exited, so [`poll`] can wait on it.
#[derive(Debug)]
pub struct PidFd(OwnedHandle);

impl PidFd {
    /// Opens `pid` for waiting and querying, and for terminating where we may (our
    /// own user's processes; an owner of another user is only waited on).
    pub fn open(pid: Pid) -> io::Result<PidFd> {
        let wait = PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION;
        open_process(pid, wait | PROCESS_TERMINATE)
            .or_else(|_| open_process(pid, wait))
            .map(PidFd)
    }

    pub fn try_clone(&self) -> io::Result<PidFd> {
        Ok(PidFd(self.0.try_clone()?))
    }
}

impl AsHandle for PidFd {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        self.0.as_handle()
    }
}

/// Process handles can always be waited on.
pub fn pidfd_supported() -> bool {
    true
}

/// Nothing to reap: Windows has no zombies, and a process's record goes when its
/// last handle closes. The server's own status comes from its handle
/// ([`ServerChild::reap`]).
///
/// [`ServerChild::reap`]: super::ServerChild::reap
pub fn reap(_pid: Pid) -> io::Result<Option<ExitStatus>> {
    Ok(None)
}

/// What the event loop waits on: a waitable handle, signalled while ready.
///
/// Every wake-up source is a waitable `HANDLE` that stays signalled while it is
/// ready (level-triggered, like `poll(2)`): a process handle once the process has
/// exited, a manual-reset event for everything else. Pipes and sockets join the
/// wait through such an event: a named pipe's pending overlapped `ConnectNamedPipe`,
/// `ReadFile` or `WriteFile` sets the event in its `OVERLAPPED` when it completes,
/// and a socket is tied to one with `WSAEventSelect` ([`Connection`]). Auto-reset
/// events must never be waited on: [`poll`] looks at every handle again after a
/// wake, and that look would consume them.
///
/// [`Connection`]: super::Connection
pub type Waitable<'a> = BorrowedHandle<'a>;

/// Anything the loop can wait on by itself (a process handle).
pub trait AsWaitable {
    fn waitable(&self) -> Waitable<'_>;
}

impl<T: AsHandle> AsWaitable for T {
    fn waitable(&self) -> Waitable<'_> {
        self.as_handle()
    }
}

/// What a wait source is waited on for. On Windows the handle itself carries it
/// (a pipe's read event or write event), so it is kept only for the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

/// At most this many handles go into one `WaitForMultipleObjects`.
const MAX_WAIT: usize = 64;

/// Waits until one of `handles` is signalled or `timeout` passes (`None`: forever).
pub fn poll_readable(
    handles: &[BorrowedHandle<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let sources: Vec<_> = handles.iter().map(|&h| (h, Interest::Read)).collect();
    poll(&sources, timeout)
}

/// Waits until one of `sources` is signalled, or `timeout` passes (`None`:
/// forever), and returns which are signalled now.
///
/// Up to 64 handles are one `WaitForMultipleObjects`. Beyond that, the handles go
/// in chunks of 63 to helper threads (this thread takes the first), each chunk
/// waited on together with one shared manual-reset event: whoever wakes first sets
/// it, which releases every other waiter at once. After any wake every handle is
/// looked at again without waiting, so all that are ready are reported, as
/// `poll(2)` does.
pub fn poll(
    sources: &[(BorrowedHandle<'_>, Interest)],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let handles: Vec<BorrowedHandle<'_>> = sources.iter().map(|&(h, _)| h).collect();
    if handles.is_empty() {
        let Some(timeout) = timeout else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "nothing to wait on, and no timeout",
            ));
        };
        std::thread::sleep(timeout);
        return Ok(Vec::new());
    }
    let millis = wait_millis(timeout);
    if handles.len() <= MAX_WAIT {
        wait_any(&handles, millis)?;
    } else if !handles.iter().any(|&h| is_signalled(h)) {
        wait_any_chunked(&handles, millis)?;
    }
    Ok(handles.iter().map(|&h| is_signalled(h)).collect())
}

/// One `WaitForMultipleObjects` (any of at most 64 handles); whether one woke it.
pub(super) fn wait_any(handles: &[BorrowedHandle<'_>], millis: u32) -> io::Result<bool> {
    // The same handle twice makes the wait fail (ERROR_INVALID_PARAMETER).
    let mut raws: Vec<HANDLE> = handles.iter().map(raw).collect();
    raws.sort_unstable();
    raws.dedup();
    // SAFETY: at most 64 valid handles in an array that lives for the call.
    let rc = unsafe { WaitForMultipleObjects(raws.len() as u32, raws.as_ptr(), 0, millis) };
    let n = raws.len() as u32;
    match rc {
        _ if (WAIT_OBJECT_0..WAIT_OBJECT_0 + n).contains(&rc) => Ok(true),
        // An abandoned mutex counts as signalled; none is waited on here anyway.
        _ if (WAIT_ABANDONED_0..WAIT_ABANDONED_0 + n).contains(&rc) => Ok(true),
        WAIT_TIMEOUT => Ok(false),
        WAIT_FAILED => Err(io::Error::last_os_error()),
        _ => Err(io::Error::other(format!("unexpected wait result {rc:#x}"))),
    }
}

/// More than 64 handles: see [`poll`].
fn wait_any_chunked(handles: &[BorrowedHandle<'_>], millis: u32) -> io::Result<()> {
    let woke = manual_event()?;
    let woke = woke.as_handle();
    let chunks: Vec<Vec<BorrowedHandle<'_>>> = handles
        .chunks(MAX_WAIT - 1)
        .map(|chunk| chunk.iter().copied().chain(Some(woke)).collect())
        .collect();
    let release = || {
        // SAFETY: a valid event handle borrowed for the call.
        unsafe { SetEvent(raw(&woke)) };
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = chunks[1..]
            .iter()
            .map(|chunk| {
                scope.spawn(move || {
                    let result = wait_any(chunk, millis);
                    release();
                    result
                })
            })
            .collect();
        let mine = wait_any(&chunks[0], millis);
        release();
        helpers
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("waiter panicked")))
            })
            .chain(Some(mine))
            .try_for_each(|r| r.map(|_| ()))
    })
}

/// Processes in exit-watch sets, and other handles, watched together. Windows has
/// no handle that stands for a set of handles, so [`EventSet::waitables`] gives all
/// of them (and [`poll`] waits on any number). A watched process's handle is a
/// copy, dropped once [`EventSet::ready`] has reported its exit: an exited process
/// stays signalled, and would keep waking the loop.
#[derive(Debug, Default)]
pub struct EventSet {
    watched: Vec<Watched>,
}

#[derive(Debug)]
struct Watched {
    key: u64,
    handle: OwnedHandle,
    /// A process's exit (reported once) rather than a change (reported while set).
    exit: bool,
}

impl EventSet {
    pub fn new() -> io::Result<EventSet> {
        Ok(EventSet::default())
    }

    /// Ready once the process behind `pidfd` has exited.
    pub fn watch_exit(&mut self, pidfd: &PidFd, key: u64) -> io::Result<()> {
        self.watched.push(Watched {
            key,
            handle: pidfd.0.try_clone()?,
            exit: true,
        });
        Ok(())
    }

    /// Ready while `waitable` (a job's change event) is signalled.
    pub fn watch_change(&mut self, waitable: Waitable<'_>, key: u64) -> io::Result<()> {
        self.watched.push(Watched {
            key,
            handle: waitable.try_clone_to_owned()?,
            exit: false,
        });
        Ok(())
    }

    /// The keys of the watched handles that are signalled now, without waiting.
    pub fn ready(&mut self, _watched: usize) -> io::Result<Vec<u64>> {
        let mut ready = Vec::new();
        self.watched.retain(|w| {
            let signalled = is_signalled(w.handle.as_handle());
            if signalled {
                ready.push(w.key);
            }
            !(signalled && w.exit)
        });
        Ok(ready)
    }

    /// Every handle of the set, to wait on together.
    pub fn waitables(&self) -> Vec<Waitable<'_>> {
        self.watched.iter().map(|w| w.handle.as_handle()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows_sys::Win32::System::Threading::SetEvent;

    #[test]
    fn waiting_on_many_handles_reports_every_ready_one() {
        let events: Vec<OwnedHandle> = (0..150).map(|_| manual_event().unwrap()).collect();
        for i in [3usize, 70, 149] {
            // SAFETY: a valid event handle.
            unsafe { SetEvent(raw(&events[i])) };
        }
        let handles: Vec<_> = events.iter().map(|e| e.as_handle()).collect();
        let ready = poll_readable(&handles, Some(Duration::from_secs(5))).unwrap();
        let which: Vec<usize> = (0..ready.len()).filter(|&i| ready[i]).collect();
        assert_eq!(which, [3, 70, 149]);
    }
}
