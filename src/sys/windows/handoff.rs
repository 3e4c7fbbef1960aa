//! The handoff from `up` to `__supervise`: a private pipe whose client end the
//! supervisor inherits, its handle value in the environment. See `docs/DESIGN.md`,
//! section "The `__supervise` handshake".

use std::io;
use std::os::windows::io::{AsHandle, BorrowedHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{HANDLE, HANDLE_FLAG_INHERIT, SetHandleInformation};
use windows_sys::Win32::Storage::FileSystem::{FILE_TYPE_PIPE, GetFileType};

use super::check;
use super::pipe::{PipeStream, Side};

/// The environment variable that gives `__supervise` its inherited handle.
pub(super) const HANDOFF_ENV: &str = "OCWRAP_HANDOFF_HANDLE";

/// How long a handoff line may take to be written (the other side reads at once).
const HANDOFF_WRITE_WAIT: Duration = Duration::from_secs(10);

/// One end of the handoff channel: a connected pipe.
#[derive(Debug)]
pub struct HandoffChannel(pub(super) PipeStream);

/// For the guard's link (`crate::guard`) only, which Windows never starts
/// (`sys::GUARDING`): the pipe's handle is never waited on.
impl AsHandle for HandoffChannel {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        self.0.handle.as_handle()
    }
}

impl HandoffChannel {
    /// Two connected ends: ours (the pipe's server end), and the one for the child.
    pub fn pair() -> io::Result<(HandoffChannel, HandoffChannel)> {
        let (ours, theirs) = PipeStream::pair("handoff")?;
        Ok((HandoffChannel(ours), HandoffChannel(theirs)))
    }

    /// The end `up` handed to this process (`__supervise`): the handle named by
    /// [`HANDOFF_ENV`], made non-inheritable at once so that the server never gets
    /// it (`up` must see the channel end when the supervisor ends).
    pub fn take() -> io::Result<HandoffChannel> {
        let not_handed = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "no channel from ocwrap up was handed to this process",
            )
        };
        let value = std::env::var(HANDOFF_ENV).map_err(|_| not_handed())?;
        let handle = value.parse::<usize>().map_err(|_| not_handed())? as HANDLE;
        // SAFETY: asks about a handle value; an invalid one is FILE_TYPE_UNKNOWN.
        if unsafe { GetFileType(handle) } != FILE_TYPE_PIPE {
            return Err(not_handed());
        }
        // SAFETY: the handle was just shown to be an open pipe of this process.
        check(unsafe { SetHandleInformation(handle, HANDLE_FLAG_INHERIT, 0) })?;
        // SAFETY: an open pipe handle inherited at creation for exactly this use;
        // nothing else in this process owns it.
        let owned = unsafe { OwnedHandle::from_raw_handle(handle as RawHandle) };
        PipeStream::new(owned, Side::Client).map(HandoffChannel)
    }

    /// Sends one line (`line` ends in a newline).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.0
            .write_all_until(line, Instant::now() + HANDOFF_WRITE_WAIT)
    }

    /// The next line (newline kept), at most `limit` bytes, waiting until
    /// `deadline`: empty once the other end closed; `TimedOut` when the deadline
    /// passed.
    pub fn read_line_until(&mut self, limit: u64, deadline: Instant) -> io::Result<Vec<u8>> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        self.0.read_line_until(limit, deadline)
    }
}
