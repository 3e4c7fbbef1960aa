//! The network, on Linux: how many connections are established on a local TCP
//! port or a Unix socket, as the kernel counts them (netlink `sock_diag`, else
//! `/proc/net/tcp{,6}` and `/proc/net/unix`; for `--idle-timeout`, see
//! `crate::idle`). The readiness probe's connect is
//! `sys/unix/net.rs`. See `docs/DESIGN.md`, section "Platform seam".

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `SOCK_DIAG_BY_FAMILY` from `linux/sock_diag.h`.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `INET_DIAG_REQ_BYTECODE` from `linux/inet_diag.h`: the filter attribute.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// `INET_DIAG_BC_S_GE` / `INET_DIAG_BC_S_LE`: compare the local port; the port is
/// in the `no` field of the operation that follows.
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;
/// `TCP_ESTABLISHED` from `net/tcp_states.h`.
const TCP_ESTABLISHED: u8 = 1;
/// `struct nlmsghdr`: length, type, flags, sequence number, port ID.
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, extensions, padding, the state mask
/// and a 48-byte `inet_diag_sockid` (unused by a dump).
const REQ_LEN: usize = 8 + 48;
/// The filter: two port comparisons of two 4-byte operations each.
const BYTECODE_LEN: usize = 16;
const ATTR_LEN: usize = 4 + BYTECODE_LEN;
const REQUEST_LEN: usize = NLMSG_HDRLEN + REQ_LEN + ATTR_LEN;
/// `struct inet_diag_msg` starts with family, state, timer, retransmits, then the
/// socket ID, whose first field is the local port in network byte order.
const MSG_STATE: usize = 1;
const MSG_SPORT: usize = 4;
/// Large enough for the biggest part a netlink dump sends (32 KiB).
const RECEIVE_BUFFER: usize = 64 * 1024;

/// How many TCP connections are established with local port `port`, IPv4 and IPv6
/// together: accepted connections of a server listening on it.
///
/// The count comes from netlink `sock_diag` (`inet_diag`): one dump request per
/// address family (IPv4 and IPv6) for sockets in state ESTABLISHED, with the port
/// filter run in the kernel as `inet_diag` bytecode (`sport >= P && sport <= P`), so
/// only the matching sockets are copied out. Where netlink is refused (no
/// `tcp_diag`, a seccomp filter, a short reply), `/proc/net/tcp` and
/// `/proc/net/tcp6` are read instead. Nothing here waits: the kernel answers a dump
/// while the request is sent and as each part is read, so every receive is
/// non-blocking, and one that would block counts as a refusal.
///
/// `_tree` (the server's processes, for platforms that count through them) is not
/// needed: the kernel's tables are filtered by port.
pub fn established_connections(
    port: u16,
    _tree: impl FnOnce() -> Vec<crate::process::Pid>,
) -> io::Result<usize> {
    let from_netlink = || -> io::Result<usize> {
        let socket = DiagSocket::open()?;
        Ok(socket.count_tcp(libc::AF_INET as u8, port, 1)?
            + socket.count_tcp(libc::AF_INET6 as u8, port, 2)?)
    };
    from_netlink().or_else(|_| {
        let table = |path: &str| match read_table(path) {
            Ok(text) => Ok(count_in_proc_table(&text, port)),
            // A kernel without IPv6 has no tcp6 table, and no IPv6 connections.
            Err(e) if e.kind() == io::ErrorKind::NotFound && path.ends_with('6') => Ok(0),
            Err(e) => Err(e),
        };
        Ok(table("/proc/net/tcp")? + table("/proc/net/tcp6")?)
    })
}

/// A `NETLINK_SOCK_DIAG` socket.
struct DiagSocket(OwnedFd);

impl DiagSocket {
    fn open() -> io::Result<DiagSocket> {
        // SAFETY: socket takes plain integers and returns a new descriptor or -1.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
        Ok(DiagSocket(unsafe { OwnedFd::from_raw_fd(raw) }))
    }

    /// Dumps the established TCP sockets of `family` on local port `port` and
    /// counts them.
    fn count_tcp(&self, family: u8, port: u16, seq: u32) -> io::Result<usize> {
        self.count(&dump_request(family, port, seq), seq, &|payload| {
            tcp_matches(payload, port)
        })
    }

    /// Sends a dump request and counts the messages of the reply that `matches`
    /// accepts. An unconnected netlink socket sends to the kernel.
    fn count(
        &self,
        request: &[u8],
        seq: u32,
        matches: &dyn Fn(&[u8]) -> io::Result<bool>,
    ) -> io::Result<usize> {
        // SAFETY: `request` is a valid buffer of `request.len()` bytes for the call.
        let sent = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buffer = vec![0u8; RECEIVE_BUFFER];
        let mut total = 0;
        loop {
            // SAFETY: `buffer` is valid for `buffer.len()` bytes for the call.
            // MSG_TRUNC makes it return the datagram's real length, so a part
            // larger than the buffer is noticed instead of read cut short.
            let n = unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            if n > buffer.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "sock_diag reply larger than the buffer",
                ));
            }
            match read_part(&buffer[..n], seq, matches)? {
                Part::More(count) => total += count,
                Part::Done(count) => return Ok(total + count),
            }
        }
    }
}

/// A dump request for the established TCP sockets of `family` whose local port is
/// `port`: `nlmsghdr`, `inet_diag_req_v2`, and the bytecode attribute, in the
/// kernel's (native) byte order except where the kernel says otherwise.
fn dump_request(family: u8, port: u16, seq: u32) -> Vec<u8> {
    let mut m = dump_header(REQUEST_LEN, seq);
    m.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
    m.extend_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
    m.extend_from_slice(&[0u8; 48]);
    m.extend_from_slice(&(ATTR_LEN as u16).to_ne_bytes());
    m.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    // Each operation is {code, yes, no}: on a match go `yes` bytes on, else `no`.
    // The program accepts when it steps exactly to its end, and rejects when it
    // steps past it: `no` = bytes left + 4 is the kernel's "reject" jump.
    let port_operation = |code: u8, no: u16| {
        let mut op = vec![code, 8];
        op.extend_from_slice(&no.to_ne_bytes());
        op.extend_from_slice(&[0, 0]);
        op.extend_from_slice(&port.to_ne_bytes());
        op
    };
    m.extend(port_operation(INET_DIAG_BC_S_GE, 16 + 4));
    m.extend(port_operation(INET_DIAG_BC_S_LE, 8 + 4));
    m
}

/// The `nlmsghdr` of a `sock_diag` dump request of `len` bytes in all (port ID
/// 0: the kernel), in a buffer with room for the rest.
fn dump_header(len: usize, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m
}

/// What one datagram of a dump said.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    /// This many matching sockets; more parts follow.
    More(usize),
    /// This many, and the dump is complete.
    Done(usize),
}

/// Whether an `inet_diag_msg` is a socket established on `port` (checked again
/// here, whatever the kernel's filter did).
fn tcp_matches(payload: &[u8], port: u16) -> io::Result<bool> {
    let short = || io::Error::new(io::ErrorKind::InvalidData, "short sock_diag message");
    let sport = payload.get(MSG_SPORT..MSG_SPORT + 2).ok_or_else(short)?;
    Ok(payload[MSG_STATE] == TCP_ESTABLISHED && u16::from_be_bytes([sport[0], sport[1]]) == port)
}

/// Counts the sockets in one datagram of a dump that `matches` accepts. Messages
/// of another request are skipped; an error message is returned as the error it
/// carries.
fn read_part(
    datagram: &[u8],
    seq: u32,
    matches: &dyn Fn(&[u8]) -> io::Result<bool>,
) -> io::Result<Part> {
    let short = || io::Error::new(io::ErrorKind::InvalidData, "short sock_diag message");
    let mut rest = datagram;
    let mut count = 0;
    while rest.len() >= NLMSG_HDRLEN {
        let u32_at =
            |at: usize| u32::from_ne_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
        let len = u32_at(0) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(short());
        }
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        let payload = &rest[NLMSG_HDRLEN..len];
        if u32_at(8) == seq {
            match i32::from(kind) {
                libc::NLMSG_DONE => return Ok(Part::Done(count)),
                libc::NLMSG_ERROR => {
                    let code = payload.get(..4).ok_or_else(short)?;
                    let code = i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
                    return Err(io::Error::from_raw_os_error(code.saturating_neg()));
                }
                _ if kind == SOCK_DIAG_BY_FAMILY => count += usize::from(matches(payload)?),
                _ => {}
            }
        }
        // Messages are 4-byte aligned (NLMSG_ALIGN).
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    Ok(Part::More(count))
}

/// A `/proc/net/tcp{,6}` table, read in 64 KiB reads. The kernel fills each
/// read a page at a time, and each read after the first resumes its walk of the
/// socket tables where the last one stopped, so a socket opened or closed
/// meanwhile can shift what is seen: a snapshot that may miss a row, never one
/// that is made up. Few, large reads make few resumptions (a small first read,
/// as a plain `read_to_string` makes, would add one).
fn read_table(path: &str) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut text = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match io::Read::read(&mut file, &mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// Counts the rows of a `/proc/net/tcp` or `/proc/net/tcp6` table in state
/// ESTABLISHED (`01`) whose local address ends in `:port` (hex).
fn count_in_proc_table(text: &str, port: u16) -> usize {
    text.lines()
        .skip(1)
        .filter(|row| {
            let fields: Vec<&str> = row.split_whitespace().take(4).collect();
            let local_port = fields
                .get(1)
                .and_then(|local| local.rsplit_once(':'))
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            local_port == Some(port) && fields.get(3) == Some(&"01")
        })
        .count()
}

/// `--idle-timeout` can count a local socket's connections here.
pub const SOCKET_CONNECTIONS_COUNTED: bool = true;
/// `UDIAG_SHOW_VFS` and `UNIX_DIAG_VFS` from `linux/unix_diag.h`: ask for, and
/// find, the inode and device of the socket file a socket is bound to.
const UDIAG_SHOW_VFS: u32 = 0x2;
const UNIX_DIAG_VFS: u16 = 1;
/// `struct unix_diag_req`: family, protocol, padding, the state mask, an inode,
/// what to show, a cookie.
const UNIX_REQ_LEN: usize = 24;
/// `struct unix_diag_msg`: family, type, state, padding, inode, cookie.
const UNIX_MSG_LEN: usize = 16;

/// How many connections are established on the Unix socket at `path`: the
/// accepted connections of the server listening there.
///
/// An accepted Unix socket shares its listener's socket file, so the count is
/// of the stream sockets in state ESTABLISHED whose socket file is `path`'s
/// (inode and device, from netlink `sock_diag` with `UDIAG_SHOW_VFS`); a client's
/// own end is bound to no file and is never counted. Where netlink is refused,
/// the rows of `/proc/net/unix` in state connected whose path is `path` are
/// counted instead (the path as the server bound it, so a relative bind is
/// missed there).
pub fn socket_connections(path: &std::path::Path) -> io::Result<usize> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path)?;
    let (ino, dev) = (meta.ino(), meta.dev());
    let from_netlink = || -> io::Result<usize> {
        let socket = DiagSocket::open()?;
        socket.count(&unix_dump_request(3), 3, &|payload| {
            unix_matches(payload, ino, dev)
        })
    };
    from_netlink().or_else(|_| {
        let text = read_table("/proc/net/unix")?;
        Ok(count_in_unix_table(&text, path))
    })
}

/// A dump request for every established Unix socket, with its socket file.
fn unix_dump_request(seq: u32) -> Vec<u8> {
    let mut m = dump_header(NLMSG_HDRLEN + UNIX_REQ_LEN, seq);
    m.extend_from_slice(&[libc::AF_UNIX as u8, 0, 0, 0]);
    m.extend_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&UDIAG_SHOW_VFS.to_ne_bytes());
    m.extend_from_slice(&[0u8; 8]);
    m
}

/// Whether a `unix_diag_msg` is an established stream socket bound to the file
/// `ino` on `dev`. The kernel gives the device in its own encoding (major << 20
/// | minor), `stat` in the one user space sees; both are compared.
fn unix_matches(payload: &[u8], ino: u64, dev: u64) -> io::Result<bool> {
    let short = || io::Error::new(io::ErrorKind::InvalidData, "short unix_diag message");
    let head = payload.get(..UNIX_MSG_LEN).ok_or_else(short)?;
    if head[1] != libc::SOCK_STREAM as u8 || head[2] != TCP_ESTABLISHED {
        return Ok(false);
    }
    let kernel_dev = (u64::from(libc::major(dev)) << 20) | u64::from(libc::minor(dev));
    let mut attrs = &payload[UNIX_MSG_LEN..];
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            return Err(short());
        }
        if kind == UNIX_DIAG_VFS && len >= 12 {
            let vfs_ino = u32::from_ne_bytes([attrs[4], attrs[5], attrs[6], attrs[7]]);
            let vfs_dev = u32::from_ne_bytes([attrs[8], attrs[9], attrs[10], attrs[11]]);
            return Ok(u64::from(vfs_ino) == ino & 0xffff_ffff
                && (u64::from(vfs_dev) == kernel_dev || u64::from(vfs_dev) == dev));
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    Ok(false)
}

/// Counts the rows of `/proc/net/unix` of a stream socket in state connected
/// (`01` type, `03` state) bound to `path`.
fn count_in_unix_table(text: &str, path: &std::path::Path) -> usize {
    let Some(path) = path.to_str() else {
        return 0;
    };
    text.lines()
        .skip(1)
        .filter(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            fields.get(4) == Some(&"0001")
                && fields.get(5) == Some(&"03")
                && fields.get(7) == Some(&path)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_part(datagram: &[u8], port: u16, seq: u32) -> io::Result<Part> {
        read_part(datagram, seq, &|payload| tcp_matches(payload, port))
    }

    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(len.next_multiple_of(4), 0);
        m
    }

    fn socket(state: u8, sport: u16) -> Vec<u8> {
        let mut msg = vec![libc::AF_INET as u8, state, 0, 0];
        msg.extend_from_slice(&sport.to_be_bytes());
        msg.resize(72, 0);
        message(SOCK_DIAG_BY_FAMILY, 7, &msg)
    }

    #[test]
    fn the_request_is_a_header_a_dump_of_established_tcp_and_a_port_filter() {
        let r = dump_request(libc::AF_INET6 as u8, 4096, 9);
        assert_eq!(r.len(), REQUEST_LEN);
        assert_eq!(
            u32::from_ne_bytes(r[0..4].try_into().unwrap()) as usize,
            r.len()
        );
        assert_eq!(r[16], libc::AF_INET6 as u8);
        assert_eq!(r[17], libc::IPPROTO_TCP as u8);
        assert_eq!(u32::from_ne_bytes(r[20..24].try_into().unwrap()), 2);
        let bytecode = &r[NLMSG_HDRLEN + REQ_LEN + 4..];
        assert_eq!(bytecode[0], INET_DIAG_BC_S_GE);
        assert_eq!(u16::from_ne_bytes([bytecode[6], bytecode[7]]), 4096);
        assert_eq!(bytecode[8], INET_DIAG_BC_S_LE);
        assert_eq!(u16::from_ne_bytes([bytecode[14], bytecode[15]]), 4096);
    }

    #[test]
    fn a_part_counts_established_sockets_on_the_port_and_ends_at_done() {
        let mut part = Vec::new();
        part.extend(socket(TCP_ESTABLISHED, 4096));
        part.extend(socket(TCP_ESTABLISHED, 4097));
        part.extend(socket(8, 4096));
        part.extend(socket(TCP_ESTABLISHED, 4096));
        assert_eq!(tcp_part(&part, 4096, 7).unwrap(), Part::More(2));
        part.extend(message(libc::NLMSG_DONE as u16, 7, &[0; 4]));
        assert_eq!(tcp_part(&part, 4096, 7).unwrap(), Part::Done(2));
        // Another request's messages are not ours.
        assert_eq!(tcp_part(&part, 4096, 8).unwrap(), Part::More(0));
    }

    #[test]
    fn an_error_message_is_the_error_it_carries_and_a_short_one_is_refused() {
        let error = message(libc::NLMSG_ERROR as u16, 7, &(-libc::EPERM).to_ne_bytes());
        let e = tcp_part(&error, 4096, 7).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        let mut cut = socket(TCP_ESTABLISHED, 4096);
        cut.truncate(40);
        assert!(tcp_part(&cut, 4096, 7).is_err());
    }

    #[test]
    fn proc_tables_are_read_by_local_port_and_state() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1000 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
           1: 0100007F:1000 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n\
           2: 0100007F:D2F0 0100007F:1000 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n\
           3: 0100007F:1000 0100007F:D2F2 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0\n";
        assert_eq!(count_in_proc_table(tcp, 0x1000), 1);
        let tcp6 = "  sl  local_address                         remote_address                        st\n\
           0: 00000000000000000000000001000000:1000 00000000000000000000000001000000:E000 01 0\n";
        assert_eq!(count_in_proc_table(tcp6, 0x1000), 1);
        assert_eq!(count_in_proc_table(tcp6, 0x1001), 0);
    }

    #[test]
    fn the_kernel_and_proc_agree_on_a_real_loopback_connection() {
        // No other test of ours opens or closes a TCP socket meanwhile: that
        // could shift the /proc table's rows between its reads (see read_table).
        let _quiet = crate::sys::fixture::LOOPBACK_TCP.lock();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(established_connections(port, Vec::new).unwrap(), 0);
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_accepted, _) = listener.accept().unwrap();
        let socket = DiagSocket::open().unwrap();
        assert_eq!(socket.count_tcp(libc::AF_INET as u8, port, 1).unwrap(), 1);
        assert_eq!(socket.count_tcp(libc::AF_INET6 as u8, port, 2).unwrap(), 0);
        let proc = count_in_proc_table(&read_table("/proc/net/tcp").unwrap(), port);
        assert_eq!(proc, 1);
        assert_eq!(established_connections(port, Vec::new).unwrap(), 1);
    }

    #[test]
    fn ipv6_connections_count_too() {
        let _quiet = crate::sys::fixture::LOOPBACK_TCP.lock();
        let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
            eprintln!("skipped: no IPv6 loopback here");
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let _client = std::net::TcpStream::connect(("::1", port)).unwrap();
        let (_accepted, _) = listener.accept().unwrap();
        let socket = DiagSocket::open().unwrap();
        assert_eq!(socket.count_tcp(libc::AF_INET6 as u8, port, 1).unwrap(), 1);
        let proc = count_in_proc_table(&read_table("/proc/net/tcp6").unwrap(), port);
        assert_eq!(proc, 1);
        assert_eq!(established_connections(port, Vec::new).unwrap(), 1);
    }

    #[test]
    fn unix_rows_are_read_by_state_and_path() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 100 /run/b.sock\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 101 /run/b.sock\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 102\n\
            0000000000000000: 00000003 00000000 00000000 0002 03 103 /run/b.sock\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 104 /run/c.sock\n";
        assert_eq!(
            count_in_unix_table(table, std::path::Path::new("/run/b.sock")),
            1
        );
    }

    #[test]
    fn the_kernel_counts_a_unix_sockets_accepted_connections_only() {
        let dir = std::env::temp_dir().join(format!("ocwrap-udiag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(socket_connections(&path).unwrap(), 0);
        let clients: Vec<_> = (0..3)
            .map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap())
            .collect();
        let accepted: Vec<_> = (0..3).map(|_| listener.accept().unwrap()).collect();
        assert_eq!(socket_connections(&path).unwrap(), 3);
        let proc = count_in_unix_table(&read_table("/proc/net/unix").unwrap(), &path);
        assert_eq!(proc, 3);
        drop(accepted);
        drop(clients);
        assert_eq!(socket_connections(&path).unwrap(), 0);
        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
