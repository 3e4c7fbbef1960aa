//! The handoff from `up` to `__supervise`, on Unix: a socket pair whose child end is
//! the spawned supervisor's descriptor 3, and which the supervisor takes back from
//! there. See `docs/DESIGN.md`, section "The `__supervise` handshake".

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Instant;

/// One end of the handoff channel.
#[derive(Debug)]
pub struct HandoffChannel {
    reader: BufReader<UnixStream>,
}

impl HandoffChannel {
    fn new(stream: UnixStream) -> HandoffChannel {
        HandoffChannel {
            reader: BufReader::new(stream),
        }
    }

    /// Two connected ends: ours, and the one for the child.
    pub fn pair() -> io::Result<(HandoffChannel, HandoffChannel)> {
        let (ours, theirs) = UnixStream::pair()?;
        Ok((HandoffChannel::new(ours), HandoffChannel::new(theirs)))
    }

    /// The end `up` handed to this process (`__supervise`): descriptor 3.
    pub fn take() -> io::Result<HandoffChannel> {
        take_channel().map(HandoffChannel::new)
    }

    /// Makes this end the spawned command's descriptor 3 (see
    /// [`pass_channel`]); this end must stay open until the command is spawned.
    pub fn pass_to(&self, command: &mut Command) {
        pass_channel(command, self.reader.get_ref().as_fd());
    }

    /// Sends one line (`line` ends in a newline).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(line)
    }

    /// The next line (newline kept), at most `limit` bytes, waiting until
    /// `deadline`: empty once the other end closed; an error of kind `WouldBlock`
    /// or `TimedOut` when the deadline passed.
    pub fn read_line_until(&mut self, limit: u64, deadline: Instant) -> io::Result<Vec<u8>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.reader.get_ref().set_read_timeout(Some(left))?;
        let mut line = Vec::new();
        (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut line)?;
        Ok(line)
    }
}

/// Readable when a line or the end of the channel is there (the guard's link,
/// `crate::guard`, waits on it in a poll set).
impl AsFd for HandoffChannel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.reader.get_ref().as_fd()
    }
}

/// The descriptor number a handed-off channel has in the child.
const HANDOFF_FD: RawFd = 3;

/// Arranges for `channel` to be descriptor 3 of the spawned command: how `up`
/// hands its validated config to the detached supervisor (`__supervise`), and how
/// the supervisor answers. The parent keeps its own descriptor open until `spawn`
/// returns, so the number stays valid in the child between fork and exec.
fn pass_channel(command: &mut Command, channel: BorrowedFd<'_>) {
    super::pass_as(command, channel.as_raw_fd(), HANDOFF_FD);
}

/// Takes descriptor 3 as the channel `up` handed us, if it is a Unix socket, and
/// marks it close-on-exec so the server never inherits it (`up` must see the
/// channel close when the supervisor ends, not when the server does).
fn take_channel() -> io::Result<std::os::unix::net::UnixStream> {
    // SAFETY: stat is plain data; zeroed is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into `st`, which lives for the call.
    if unsafe { libc::fstat(HANDOFF_FD, &mut st) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptor 3 is not the channel from ocwrap up",
        ));
    }
    // SAFETY: F_SETFD on a descriptor that fstat just showed to be open.
    if unsafe { libc::fcntl(HANDOFF_FD, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: descriptor 3 is open, is a socket, and nothing else in this process
    // owns it: it was handed to us at exec for exactly this use.
    Ok(unsafe { std::os::unix::net::UnixStream::from_raw_fd(HANDOFF_FD) })
}
