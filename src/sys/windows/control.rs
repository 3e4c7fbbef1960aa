//! The control channel: a named pipe per registration, named by the file at the
//! control path; who is at its other end (the pipe's peer PID, its creation time,
//! its token's user); and the descriptor limits, which Windows does not have. See
//! `docs/DESIGN.md`, section "Platform seam".

use std::io::{self, Write};
use std::os::windows::io::AsHandle;
use std::path::Path;
use std::time::Instant;

use windows_sys::Win32::System::Pipes::{GetNamedPipeClientProcessId, GetNamedPipeServerProcessId};
use windows_sys::Win32::System::Threading::PROCESS_QUERY_LIMITED_INFORMATION;

use super::fs::state_entry_options;
use super::pipe::{MAX_PIPE_NAME, PAIR_WAIT, PipeListener, PipeStream, Side, unique_pipe_name};
use super::proc::{creation_time, open_process};
use super::security::{UserId, UserSid, token_user};
use super::wait::{Interest, Waitable};
use super::{check, raw};
use crate::process::Pid;

/// Longest control path: the path of the file naming the pipe (Windows paths, with
/// std's long-path support).
pub const MAX_CONTROL_PATH: usize = 32_000;

/// Whether several connections can wait for the control listener at once: no.
/// One pipe instance waits at a time, and the next client's connect waits (at
/// most 5 s) until that one is accepted and a new instance is made.
pub const CONTROL_BACKLOG: bool = false;

/// The prefix of every pipe name ocwrap makes (see [`unique_pipe_name`]).
const PIPE_PREFIX: &str = r"\\.\pipe\ocwrap-";

/// The supervisor's control endpoint. Windows has no Unix sockets (and Wine no
/// AF_UNIX at all), so it is a named pipe ([`PipeListener`]: private to the user,
/// its first instance ours), and the file at the control path names it. The file
/// gives the endpoint what the portable code expects of a socket: an identity, a
/// place in the state dir that can be watched, replaced and removed. A new bind
/// makes a new pipe, so re-registering never collides with the pipe still open.
#[derive(Debug)]
pub struct ControlListener(PipeListener);

impl ControlListener {
    /// Makes a new pipe and the file at `path` (which must not exist) naming it.
    pub fn bind(path: &Path) -> io::Result<ControlListener> {
        let name = unique_pipe_name("control")?;
        let listener = PipeListener::create(&name)?;
        let mut file = state_entry_options()
            .write(true)
            .create_new(true)
            .open(path)?;
        file.write_all(name.as_bytes())?;
        Ok(ControlListener(listener))
    }

    /// The next connected client, without waiting: `None` when there is none.
    pub fn accept(&mut self) -> Option<io::Result<ControlStream>> {
        match self.0.accept() {
            Ok(Some(stream)) => Some(Ok(ControlStream(stream))),
            Ok(None) => None,
            // The pipe could not be re-armed (out of handles, say): nothing is
            // accepted now, and the connect event stays set, so the loop asks
            // again at its next turn; the registration's own checks notice a
            // control endpoint that is gone.
            Err(_) => None,
        }
    }

    /// Never: a named pipe instance is made before a client connects, so a
    /// connection never waits on a handle we cannot open (see the Unix seam).
    pub fn took_reserve(&self) -> bool {
        false
    }

    /// Signalled when a client has connected.
    pub fn waitable(&self) -> Waitable<'_> {
        self.0.handle()
    }
}

/// No limit on handles that a control client could use up (the Unix seam caps
/// clients below its descriptor limit).
pub fn descriptor_limit() -> Option<u64> {
    None
}

/// The pipe named by the control file at `path`: a regular file of our own, holding
/// one of ocwrap's pipe names.
fn pipe_named_at(path: &Path) -> io::Result<String> {
    let file = state_entry_options().read(true).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > MAX_PIPE_NAME as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} does not name a control pipe", path.display()),
        ));
    }
    let mut name = String::new();
    io::Read::read_to_string(&mut &file, &mut name)?;
    if !name.starts_with(PIPE_PREFIX) || name[PIPE_PREFIX.len()..].contains(['\\', '/']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} does not name a control pipe", path.display()),
        ));
    }
    Ok(name)
}

/// One control connection, non-blocking.
#[derive(Debug)]
pub struct ControlStream(PipeStream);

impl ControlStream {
    /// Two connected ends, both non-blocking (for tests).
    pub fn pair() -> io::Result<(ControlStream, ControlStream)> {
        let (server, client) = PipeStream::pair("pair")?;
        Ok((ControlStream(server), ControlStream(client)))
    }

    /// A client's end, connected to the pipe the file at `path` names (waiting
    /// up to 5 s for a free instance).
    pub fn connect(path: &Path) -> io::Result<ControlStream> {
        PipeStream::connect(&pipe_named_at(path)?, PAIR_WAIT).map(ControlStream)
    }

    /// Signalled when a read (`Read`) or a write (`Write`) will make progress.
    pub fn waitable(&self, interest: Interest) -> Waitable<'_> {
        match interest {
            Interest::Read => self.0.read_handle(),
            Interest::Write => self.0.write_handle(),
        }
    }

    /// Reads what has arrived: `Ok(0)` once the peer closed, `WouldBlock` when
    /// nothing has arrived yet.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }

    /// Writes without waiting (see [`PipeStream::write`]).
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    /// Writes all of `data`, waiting for room at most until `deadline`.
    pub fn write_all_until(&mut self, data: &[u8], deadline: Instant) -> io::Result<()> {
        self.0.write_all_until(data, deadline)
    }

    /// Reads until a newline (kept), the end of the stream, or `limit` bytes,
    /// waiting at most until `deadline`.
    pub fn read_line_until(&mut self, limit: usize, deadline: Instant) -> io::Result<Vec<u8>> {
        self.0.read_line_until(limit, deadline)
    }

    /// The user at the other end (see [`PipeStream::peer_user`]).
    pub fn peer_user(&self) -> io::Result<UserId> {
        self.0.peer_user()
    }

    /// The process at the other end, as the pipe recorded it (Windows has no PID
    /// namespaces: always `Some`).
    pub fn peer_pid(&self) -> io::Result<Option<Pid>> {
        self.0.peer_pid().map(Some)
    }
}

// Who is at the other end of a pipe.

impl PipeStream {
    /// The PID of the process at the other end, as the pipe recorded it.
    fn peer_pid(&self) -> io::Result<Pid> {
        let mut pid = 0u32;
        // SAFETY: a valid pipe handle and one u32 that lives for the call.
        check(unsafe {
            match self.side {
                Side::Server => GetNamedPipeClientProcessId(raw(&self.handle), &mut pid),
                Side::Client => GetNamedPipeServerProcessId(raw(&self.handle), &mut pid),
            }
        })?;
        Pid::from_u32(pid).ok_or_else(|| io::Error::other("the pipe names no peer process"))
    }

    /// The user the peer runs as. The pipe gives only the peer's PID, so its
    /// process is opened and must have been created no later than the connection
    /// (else that PID was reused by another process since); its token's user is
    /// the answer.
    fn peer_user(&self) -> io::Result<UserSid> {
        let pid = self.peer_pid()?;
        let process = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION)?;
        if creation_time(process.as_handle())?.0 > self.connected_at {
            return Err(io::Error::other("the peer's PID was reused"));
        }
        token_user(raw(&process))
    }
}

/// Whether `error` says the process is out of descriptors: Windows sets no such
/// limit on handles.
pub fn is_out_of_descriptors(_error: &io::Error) -> bool {
    false
}

/// A reserve for a process out of descriptors: Windows has no descriptor limit,
/// so there is nothing to hold (see the Unix counterpart).
#[derive(Debug, Default)]
pub struct DescriptorReserve;

impl DescriptorReserve {
    pub fn new() -> DescriptorReserve {
        DescriptorReserve
    }

    /// Runs `f`.
    pub fn lend<T>(&mut self, f: impl FnOnce() -> T) -> T {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::windows::fixture::scratch;
    use crate::sys::windows::poll_readable;
    use crate::sys::windows::security::current_user;
    use crate::sys::windows::security::sid_bytes;
    use std::fs;
    use std::mem::{size_of, zeroed};
    use std::os::windows::io::BorrowedHandle;
    use std::time::Duration;
    use windows_sys::Win32::Foundation::{HLOCAL, LocalFree};
    use windows_sys::Win32::Security::{PSECURITY_DESCRIPTOR, PSID};

    #[test]
    fn a_pipe_pair_is_connected_identified_and_answered() {
        let (mut server, mut client) = ControlStream::pair().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(server.0.peer_pid().unwrap(), Pid::current());
        assert_eq!(server.peer_user().unwrap(), current_user());
        assert_eq!(client.peer_user().unwrap(), current_user());
        client
            .write_all_until(b"{\"op\":\"status\"}\n", deadline)
            .unwrap();
        assert_eq!(
            server.0.read_line_until(1024, deadline).unwrap(),
            b"{\"op\":\"status\"}\n"
        );
        server
            .write_all_until(b"{\"ok\":true}\n", deadline)
            .unwrap();
        drop(server);
        assert_eq!(
            client.0.read_line_until(1024, deadline).unwrap(),
            b"{\"ok\":true}\n"
        );
        assert!(
            client.0.read_line_until(1024, deadline).unwrap().is_empty(),
            "the server closed: end of stream"
        );
    }

    #[test]
    fn a_control_request_reaches_the_pipe_its_file_names() {
        let dir = scratch("control");
        let path = dir.join("x.sock");
        let mut listener = ControlListener::bind(&path).unwrap();
        assert!(pipe_named_at(&path).unwrap().starts_with(PIPE_PREFIX));
        let client_path = path.clone();
        let client = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut stream = ControlStream::connect(&client_path)?;
            stream.write_all_until(b"ping\n", deadline)?;
            stream.read_line_until(1024, deadline)
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut stream = loop {
            if let Some(accepted) = listener.accept() {
                break accepted.unwrap();
            }
            assert!(Instant::now() < deadline, "no client within 5 s");
            poll_readable(&[listener.waitable()], Some(Duration::from_millis(100))).unwrap();
        };
        assert_eq!(stream.0.read_line_until(1024, deadline).unwrap(), b"ping\n");
        stream.write_all_until(b"pong\n", deadline).unwrap();
        assert_eq!(client.join().unwrap().unwrap(), b"pong\n");
        let _ = fs::remove_dir_all(&dir);
    }

    /// The (user SID, access mask) of each entry of the access list of `handle`.
    fn access_list(handle: BorrowedHandle<'_>) -> Vec<(UserSid, u32)> {
        use windows_sys::Win32::Security::Authorization::{GetSecurityInfo, SE_KERNEL_OBJECT};
        use windows_sys::Win32::Security::{
            ACCESS_ALLOWED_ACE, ACL, ACL_SIZE_INFORMATION, AclSizeInformation,
            DACL_SECURITY_INFORMATION, GetAce, GetAclInformation,
        };
        let mut dacl: *mut ACL = std::ptr::null_mut();
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: a valid handle; on success `dacl` points into `sd`, which the call
        // allocated with LocalAlloc and which is freed below, after the reads.
        let rc = unsafe {
            GetSecurityInfo(
                raw(&handle),
                SE_KERNEL_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut dacl,
                std::ptr::null_mut(),
                &mut sd,
            )
        };
        assert_eq!(rc, 0, "GetSecurityInfo");
        assert!(!dacl.is_null(), "a null access list admits everyone");
        // SAFETY: plain data; the call fills it.
        let mut size: ACL_SIZE_INFORMATION = unsafe { zeroed() };
        // SAFETY: a valid ACL and a structure of the size passed.
        check(unsafe {
            GetAclInformation(
                dacl,
                (&mut size as *mut ACL_SIZE_INFORMATION).cast(),
                size_of::<ACL_SIZE_INFORMATION>() as u32,
                AclSizeInformation,
            )
        })
        .unwrap();
        let entries = (0..size.AceCount)
            .map(|i| {
                let mut ace: *mut std::ffi::c_void = std::ptr::null_mut();
                // SAFETY: a valid ACL and an index below its count.
                check(unsafe { GetAce(dacl, i, &mut ace) }).unwrap();
                let ace = ace as *const ACCESS_ALLOWED_ACE;
                // SAFETY: the entry lives in the ACL; an allowing entry (type 0, the
                // only kind our descriptor has) ends in its SID.
                unsafe {
                    assert_eq!((*ace).Header.AceType, 0, "an allowing entry");
                    let sid = std::ptr::addr_of!((*ace).SidStart) as PSID;
                    (UserSid(sid_bytes(sid)), (*ace).Mask)
                }
            })
            .collect();
        // SAFETY: allocated by GetSecurityInfo, freed once, not used after.
        unsafe { LocalFree(sd as HLOCAL) };
        entries
    }

    #[test]
    fn the_control_pipe_admits_only_this_user() {
        let dir = scratch("acl");
        let listener = ControlListener::bind(&dir.join("x.sock")).unwrap();
        let entries = access_list(listener.0.waiting.handle.as_handle());
        assert_eq!(entries.len(), 1, "one entry: {entries:?}");
        assert_eq!(entries[0].0, current_user());
        drop(listener);
        let _ = fs::remove_dir_all(&dir);
    }
}
