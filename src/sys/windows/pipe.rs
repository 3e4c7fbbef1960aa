//! The named-pipe machinery that the control channel and the handoff share: a
//! pipe of our own (private to the user, first instance ours), its listener, and
//! a connection whose reads and writes never wait (overlapped I/O, each operation's
//! event joining the loop's wait). See `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::mem::zeroed;
use std::os::windows::io::{AsHandle, BorrowedHandle, OwnedHandle};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_BROKEN_PIPE, ERROR_IO_INCOMPLETE, ERROR_IO_PENDING, ERROR_PIPE_BUSY,
    ERROR_PIPE_CONNECTED, GENERIC_READ, GENERIC_WRITE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, OPEN_EXISTING,
    PIPE_ACCESS_DUPLEX, ReadFile, SECURITY_IDENTIFICATION, SECURITY_SQOS_PRESENT, WriteFile,
};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS,
    PIPE_TYPE_BYTE, PIPE_UNLIMITED_INSTANCES, PIPE_WAIT, WaitNamedPipeW,
};
use windows_sys::Win32::System::Threading::{ResetEvent, SetEvent};

use super::security::{PrivateSecurity, UserSid};
use super::wait::{Interest, wait_any};
use super::{is_signalled, manual_event, now_filetime, owned_or_invalid, raw, wait_millis, wide};

/// Longest name a named pipe may have (`\\.\pipe\` included).
pub(super) const MAX_PIPE_NAME: usize = 256;

/// Each side's pipe buffer: far above one request (64 KiB at most) is not needed,
/// and a reply larger than it is written in pieces as the client reads.
const PIPE_BUFFER: u32 = 64 * 1024;

/// A pipe name of our own: `\\.\pipe\ocwrap-<SID>-<what>-<pid>-<n>`, unique among
/// live processes (a PID is). The user's SID keeps users apart; the pipe's
/// descriptor (see [`PipeListener::create`]) makes it private.
pub(super) fn unique_pipe_name(what: &str) -> io::Result<String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        r"\\.\pipe\ocwrap-{}-{what}-{}-{}",
        UserSid::current()?.to_string_form()?,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    if name.len() > MAX_PIPE_NAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pipe name too long",
        ));
    }
    Ok(name)
}

/// One overlapped operation slot: the `OVERLAPPED` (boxed: the kernel writes to its
/// address until the operation completes) and its manual-reset event.
struct Op {
    overlapped: Box<OVERLAPPED>,
    event: OwnedHandle,
    pending: bool,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Op")
            .field("event", &self.event)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

// SAFETY: an `Op` is used by one thread at a time (its owner's); its OVERLAPPED
// holds only our own event handle and offsets, valid in any thread.
unsafe impl Send for Op {}

impl Op {
    fn new() -> io::Result<Op> {
        let event = manual_event()?;
        // SAFETY: plain data; all-zero is the documented initial state.
        let mut overlapped: Box<OVERLAPPED> = Box::new(unsafe { zeroed() });
        overlapped.hEvent = raw(&event);
        Ok(Op {
            overlapped,
            event,
            pending: false,
        })
    }

    /// Makes the event say "ready" without an operation (a connect that was
    /// already complete, a result kept for the next call).
    fn signal(&self) {
        // SAFETY: a valid event handle.
        unsafe { SetEvent(raw(&self.event)) };
    }

    /// The result of the pending operation if it is done: `Ok(None)` while not.
    fn finish(&mut self, file: &OwnedHandle) -> io::Result<Option<u32>> {
        let mut transferred = 0u32;
        // SAFETY: the OVERLAPPED of an operation started on `file`; no wait.
        let ok = unsafe { GetOverlappedResult(raw(file), &*self.overlapped, &mut transferred, 0) };
        if ok == 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(ERROR_IO_INCOMPLETE as i32) {
                return Ok(None);
            }
            self.pending = false;
            return Err(error);
        }
        self.pending = false;
        Ok(Some(transferred))
    }

    /// Cancels a pending operation and waits until the kernel has let go of the
    /// `OVERLAPPED` and the buffer, which may then be freed.
    fn cancel(&mut self, file: &OwnedHandle) {
        if !self.pending {
            return;
        }
        let mut transferred = 0u32;
        // SAFETY: the OVERLAPPED of an operation started on `file`; waiting (last
        // argument 1) returns once the cancelled operation has completed.
        unsafe {
            CancelIoEx(raw(file), &*self.overlapped);
            GetOverlappedResult(raw(file), &*self.overlapped, &mut transferred, 1);
        }
        self.pending = false;
    }
}

/// The supervisor's end of the control pipe: one instance always waits for the
/// next client (an overlapped `ConnectNamedPipe`), and its event joins [`poll`].
///
/// [`poll`]: super::poll
#[derive(Debug)]
pub(super) struct PipeListener {
    name: Vec<u16>,
    security: PrivateSecurityHolder,
    pub(super) waiting: PipeStream,
    connect: Op,
}

/// The descriptor kept for creating further instances.
struct PrivateSecurityHolder(PrivateSecurity);

impl std::fmt::Debug for PrivateSecurityHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateSecurity")
    }
}

// SAFETY: the descriptor is immutable memory owned by the holder, freed once.
unsafe impl Send for PrivateSecurityHolder {}

impl PipeListener {
    /// Creates the pipe's first instance. `FILE_FLAG_FIRST_PIPE_INSTANCE` makes this
    /// fail if the name exists already, so nobody can squat it and receive our
    /// clients' requests; the descriptor admits only the current user, so nobody
    /// else can connect or add an instance.
    pub(super) fn create(name: &str) -> io::Result<PipeListener> {
        let security = PrivateSecurityHolder(PrivateSecurity::new(&UserSid::current()?, false)?);
        let name = wide(name);
        let waiting = new_instance(&name, &security.0, true)?;
        let mut listener = PipeListener {
            name,
            security,
            waiting,
            connect: Op::new()?,
        };
        listener.start_connect()?;
        Ok(listener)
    }

    fn start_connect(&mut self) -> io::Result<()> {
        let op = &mut self.connect;
        // SAFETY: a pipe instance opened for overlapped I/O and a boxed OVERLAPPED
        // that stays put until the operation completes or is cancelled (see Drop).
        let ok = unsafe { ConnectNamedPipe(raw(&self.waiting.handle), &mut *op.overlapped) };
        if ok != 0 {
            op.signal();
            return Ok(());
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error().map(|e| e as u32) {
            Some(ERROR_IO_PENDING) => op.pending = true,
            // A client connected between create and connect: ready now.
            Some(ERROR_PIPE_CONNECTED) => op.signal(),
            _ => return Err(error),
        }
        Ok(())
    }

    /// Signalled when a client has connected.
    pub(super) fn handle(&self) -> BorrowedHandle<'_> {
        self.connect.event.as_handle()
    }

    /// The next connected client, `None` while there is none; never waits. A new
    /// instance takes over the waiting. A client that went away before it was
    /// accepted is skipped (`None`: the next one wakes the loop again).
    pub(super) fn accept(&mut self) -> io::Result<Option<PipeStream>> {
        if self.connect.pending {
            match self.connect.finish(&self.waiting.handle) {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(None),
                Err(_) => {
                    self.waiting = new_instance(&self.name, &self.security.0, false)?;
                    self.start_connect()?;
                    return Ok(None);
                }
            }
        }
        if !is_signalled(self.connect.event.as_handle()) {
            return Ok(None);
        }
        let next = new_instance(&self.name, &self.security.0, false)?;
        let mut connected = std::mem::replace(&mut self.waiting, next);
        connected.connected_at = now_filetime();
        // SAFETY: a valid event handle; the next connect starts unsignalled.
        unsafe { ResetEvent(raw(&self.connect.event)) };
        self.start_connect()?;
        // A read in flight from the start, so that its event means "readable". A
        // failure (the client left already) comes back from the first read.
        if connected.fill().is_err() {
            connected.ended = true;
            connected.read.signal();
        }
        Ok(Some(connected))
    }

    /// Waits at most `timeout` for the next client (for a channel's first one).
    fn accept_within(&mut self, timeout: Duration) -> io::Result<PipeStream> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(stream) = self.accept()? {
                return Ok(stream);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !wait_any(&[self.handle()], wait_millis(Some(left)))? {
                return Err(io::Error::from(io::ErrorKind::TimedOut));
            }
        }
    }
}

impl Drop for PipeListener {
    fn drop(&mut self) {
        self.connect.cancel(&self.waiting.handle);
    }
}

fn new_instance(name: &[u16], security: &PrivateSecurity, first: bool) -> io::Result<PipeStream> {
    let attributes = security.attributes();
    let first = if first {
        FILE_FLAG_FIRST_PIPE_INSTANCE
    } else {
        0
    };
    // SAFETY: a NUL-terminated name and attributes whose descriptor lives for the
    // call; returns a new handle or INVALID_HANDLE_VALUE.
    let handle = unsafe {
        owned_or_invalid(CreateNamedPipeW(
            name.as_ptr(),
            PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | first,
            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            PIPE_UNLIMITED_INSTANCES,
            PIPE_BUFFER,
            PIPE_BUFFER,
            0,
            &attributes,
        ))
    }?;
    PipeStream::new(handle, Side::Server)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Server,
    Client,
}

/// One control connection, either end. Reads and writes never wait: each starts an
/// overlapped operation and answers `WouldBlock` while it is in flight; the
/// operation's event ([`PipeStream::read_handle`], [`PipeStream::write_handle`])
/// is signalled when calling again will make progress.
#[derive(Debug)]
pub(super) struct PipeStream {
    pub(super) handle: OwnedHandle,
    pub(super) side: Side,
    read: Op,
    read_buffer: Box<[u8]>,
    /// Bytes read and not yet handed out, and whether the peer has finished.
    unread: Vec<u8>,
    ended: bool,
    write: Op,
    write_buffer: Vec<u8>,
    /// When the server accepted the connection (100 ns since 1601): the peer's
    /// process must be older, or its PID was reused since.
    pub(super) connected_at: u64,
}

/// How much one overlapped read asks for.
const READ_CHUNK: usize = 4096;

impl PipeStream {
    pub(super) fn new(handle: OwnedHandle, side: Side) -> io::Result<PipeStream> {
        Ok(PipeStream {
            handle,
            side,
            read: Op::new()?,
            read_buffer: vec![0u8; READ_CHUNK].into_boxed_slice(),
            unread: Vec::new(),
            ended: false,
            write: Op::new()?,
            write_buffer: Vec::new(),
            connected_at: now_filetime(),
        })
    }

    /// Two connected ends of a new pipe of our own, named for `what`: the server's
    /// end first, then the client's (both in this process).
    pub(super) fn pair(what: &str) -> io::Result<(PipeStream, PipeStream)> {
        let name = unique_pipe_name(what)?;
        let mut listener = PipeListener::create(&name)?;
        let client = PipeStream::connect(&name, PAIR_WAIT)?;
        let server = listener.accept_within(PAIR_WAIT)?;
        Ok((server, client))
    }

    /// Connects to the supervisor's pipe, waiting at most `timeout` for a free
    /// instance. The server may identify us but never act as us
    /// (`SECURITY_IDENTIFICATION`).
    pub(super) fn connect(name: &str, timeout: Duration) -> io::Result<PipeStream> {
        let deadline = Instant::now() + timeout;
        let name = wide(name);
        loop {
            // SAFETY: a NUL-terminated name; returns a new handle or
            // INVALID_HANDLE_VALUE.
            let opened = unsafe {
                owned_or_invalid(CreateFileW(
                    name.as_ptr(),
                    GENERIC_READ | GENERIC_WRITE,
                    0,
                    std::ptr::null(),
                    OPEN_EXISTING,
                    FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                    std::ptr::null_mut(),
                ))
            };
            match opened {
                Ok(handle) => return PipeStream::new(handle, Side::Client),
                Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::from(io::ErrorKind::TimedOut));
                    }
                    // SAFETY: a NUL-terminated name and a bounded wait.
                    unsafe { WaitNamedPipeW(name.as_ptr(), wait_millis(Some(left))) };
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads what is there without waiting: `Ok(0)` once the peer has closed,
    /// `WouldBlock` while a read is in flight (then [`PipeStream::read_handle`]
    /// is signalled when it completes).
    pub(super) fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.unread.is_empty() && !self.ended {
            self.fill()?;
        }
        if self.unread.is_empty() {
            return if self.ended {
                Ok(0)
            } else {
                Err(io::Error::from(io::ErrorKind::WouldBlock))
            };
        }
        let n = out.len().min(self.unread.len());
        out[..n].copy_from_slice(&self.unread[..n]);
        self.unread.drain(..n);
        if self.unread.is_empty() && !self.ended {
            // Keep a read in flight: the finished one left the event signalled, and
            // only a new operation resets it, so that "signalled" keeps meaning
            // "read will make progress". Its error, if any, comes back next call.
            let _ = self.fill();
        }
        Ok(n)
    }

    /// Collects the result of the read in flight, or starts one.
    fn fill(&mut self) -> io::Result<()> {
        let done = if self.read.pending {
            self.read.finish(&self.handle)
        } else {
            self.start_read()
        };
        match done {
            Ok(Some(0)) | Ok(None) => Ok(()),
            Ok(Some(n)) => {
                self.unread
                    .extend_from_slice(&self.read_buffer[..n as usize]);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(ERROR_BROKEN_PIPE as i32) => {
                self.ended = true;
                self.read.signal();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn start_read(&mut self) -> io::Result<Option<u32>> {
        let op = &mut self.read;
        // SAFETY: an overlapped handle; the buffer and the OVERLAPPED are boxed and
        // stay in place until the read completes or is cancelled (see Drop).
        let ok = unsafe {
            ReadFile(
                raw(&self.handle),
                self.read_buffer.as_mut_ptr(),
                self.read_buffer.len() as u32,
                std::ptr::null_mut(),
                &mut *op.overlapped,
            )
        };
        let error = io::Error::last_os_error();
        op.pending = true;
        if ok == 0 && error.raw_os_error() != Some(ERROR_IO_PENDING as i32) {
            op.pending = false;
            return Err(error);
        }
        // Done at once or in flight: either way the result is collected the same.
        op.finish(&self.handle)
    }

    /// Writes without waiting. A write in flight answers `WouldBlock`; the caller
    /// then calls again later with the same remaining bytes (it may not change
    /// them), and gets the count once the write completed. This is how a client
    /// that does not read can never stall the writer.
    pub(super) fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.write.pending {
            return match self.write.finish(&self.handle)? {
                Some(n) => Ok(n as usize),
                None => Err(io::Error::from(io::ErrorKind::WouldBlock)),
            };
        }
        let len = data.len().min(PIPE_BUFFER as usize);
        self.write_buffer.clear();
        self.write_buffer.extend_from_slice(&data[..len]);
        let op = &mut self.write;
        // SAFETY: an overlapped handle; `write_buffer` is not touched and the boxed
        // OVERLAPPED stays in place until the write completes or is cancelled.
        let ok = unsafe {
            WriteFile(
                raw(&self.handle),
                self.write_buffer.as_ptr(),
                len as u32,
                std::ptr::null_mut(),
                &mut *op.overlapped,
            )
        };
        let error = io::Error::last_os_error();
        op.pending = true;
        if ok == 0 && error.raw_os_error() != Some(ERROR_IO_PENDING as i32) {
            op.pending = false;
            return Err(error);
        }
        match op.finish(&self.handle)? {
            Some(n) => Ok(n as usize),
            None => Err(io::Error::from(io::ErrorKind::WouldBlock)),
        }
    }

    /// Signalled when [`PipeStream::read`] will make progress.
    pub(super) fn read_handle(&self) -> BorrowedHandle<'_> {
        self.read.event.as_handle()
    }

    /// Signalled when [`PipeStream::write`] will make progress.
    pub(super) fn write_handle(&self) -> BorrowedHandle<'_> {
        self.write.event.as_handle()
    }

    /// Writes all of `data`, waiting at most until `deadline` (for clients).
    pub(super) fn write_all_until(&mut self, mut data: &[u8], deadline: Instant) -> io::Result<()> {
        while !data.is_empty() {
            match self.write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_until(Interest::Write, deadline)?
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until a `\n` (kept), the peer closes, or `limit` bytes, waiting at most
    /// until `deadline` (for clients).
    pub(super) fn read_line_until(
        &mut self,
        limit: usize,
        deadline: Instant,
    ) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let mut chunk = [0u8; READ_CHUNK];
        while !line.contains(&b'\n') && line.len() < limit {
            match self.read(&mut chunk[..READ_CHUNK.min(limit - line.len())]) {
                Ok(0) => break,
                Ok(n) => line.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_until(Interest::Read, deadline)?
                }
                Err(e) => return Err(e),
            }
        }
        Ok(line)
    }

    fn wait_until(&self, interest: Interest, deadline: Instant) -> io::Result<()> {
        let handle = match interest {
            Interest::Read => self.read_handle(),
            Interest::Write => self.write_handle(),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !wait_any(&[handle], wait_millis(Some(left)))? {
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        Ok(())
    }
}

impl Drop for PipeStream {
    fn drop(&mut self) {
        self.read.cancel(&self.handle);
        self.write.cancel(&self.handle);
    }
}

/// How long a pipe pair may take to connect (both ends are in this process).
pub(super) const PAIR_WAIT: Duration = Duration::from_secs(5);
