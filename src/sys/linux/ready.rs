//! Declared readiness, on Linux: the notify socket behind `--ready notify`, a
//! Unix datagram socket that says who sent each message (`SO_PASSCRED`: the
//! kernel attaches the sender's PID, which the sender cannot forge without
//! `CAP_SYS_ADMIN`). See `docs/DESIGN.md`, sections "Readiness" and "Platform seam".

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::process::Pid;
use crate::sys::{FileId, NotifyMessage, Waitable};

/// `--ready notify` is built here.
pub const NOTIFY_READINESS: bool = true;

/// The bound notify socket (non-blocking, close-on-exec).
#[derive(Debug)]
pub struct NotifySocket {
    fd: OwnedFd,
    file: Option<FileId>,
}

impl NotifySocket {
    /// Binds a datagram socket at `path`, mode `0600` (inside a `0700` state
    /// dir), asking for each sender's credentials.
    pub fn bind(path: &Path) -> io::Result<NotifySocket> {
        let (addr, len) = super::unix_socket_address(path)?;
        // SAFETY: socket takes plain integers and returns a new descriptor or -1.
        let raw = unsafe {
            libc::socket(
                libc::AF_UNIX,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        crate::sys::unix::turn_on_socket_option(fd.as_fd(), libc::SO_PASSCRED)?;
        // SAFETY: `addr` is a valid Unix socket address of `len` bytes for the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(NotifySocket {
            fd,
            file: FileId::at(path),
        })
    }

    /// The identity of the socket file it bound, for removing only that one.
    pub fn file_id(&self) -> Option<FileId> {
        self.file
    }

    /// Readable when a message waits.
    pub fn waitable(&self) -> Waitable<'_> {
        self.fd.as_fd()
    }

    /// The next message into `buf`, never waiting: `None` when none waits.
    pub fn receive(&self, buf: &mut [u8]) -> io::Result<Option<NotifyMessage>> {
        // Room for one SCM_CREDENTIALS message (CMSG_SPACE of a ucred), aligned.
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; all zeroes is a valid value.
        let mut header: libc::msghdr = unsafe { mem::zeroed() };
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1 as _;
        header.msg_control = control.as_mut_ptr().cast();
        // `as _`: the field is `size_t` under glibc and `socklen_t` under musl.
        header.msg_controllen = mem::size_of_val(&control) as _;
        // SAFETY: `header` points at `iov` (our buffer) and `control`, which live
        // for the call.
        let n = unsafe {
            libc::recvmsg(
                self.fd.as_raw_fd(),
                &mut header,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let n = n as usize;
        let mut sender = None;
        // SAFETY: the CMSG_* walk stays within `header.msg_control` as the kernel
        // filled it; a credentials message carries one ucred.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&header);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS
                    && (*cmsg).cmsg_len as usize
                        >= libc::CMSG_LEN(mem::size_of::<libc::ucred>() as u32) as usize
                {
                    let cred: libc::ucred = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    sender = Pid::new(cred.pid);
                }
                cmsg = libc::CMSG_NXTHDR(&header, cmsg);
            }
        }
        Ok(Some(NotifyMessage {
            len: n.min(buf.len()),
            truncated: n > buf.len() || header.msg_flags & libc::MSG_TRUNC != 0,
            sender,
        }))
    }
}
