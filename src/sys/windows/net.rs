//! The network: a readiness probe's TCP connection driven by the loop
//! (`WSAEventSelect`), and the count of established connections on a port (the IP
//! Helper's tables). See `docs/DESIGN.md`, section "Platform seam".

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, TcpStream};
use std::os::windows::io::{AsHandle, AsRawSocket, FromRawSocket, OwnedHandle, RawSocket};
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::ERROR_INSUFFICIENT_BUFFER;
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GetTcp6Table, GetTcpTable, MIB_TCP_STATE_ESTAB, MIB_TCP6TABLE, MIB_TCPTABLE,
};
use windows_sys::Win32::Networking::WinSock::{
    ADDRESS_FAMILY, AF_INET, AF_INET6, FD_CLOSE, FD_CONNECT, FD_CONNECT_BIT, FD_READ, FD_WRITE,
    INVALID_SOCKET, IPPROTO_TCP, SOCK_STREAM, SOCKADDR_IN, SOCKADDR_IN6, SOCKADDR_STORAGE, SOCKET,
    WSA_FLAG_NO_HANDLE_INHERIT, WSA_FLAG_OVERLAPPED, WSADATA, WSAEVENT, WSAEWOULDBLOCK,
    WSAEnumNetworkEvents, WSAEventSelect, WSAGetLastError, WSANETWORKEVENTS, WSASocketW,
    WSAStartup, connect,
};

use super::wait::{Interest, Waitable};
use super::{manual_event, raw};

/// A non-blocking TCP connection under way, for the readiness probe. A socket
/// cannot join a wait by itself: `WSAEventSelect` ties it to a manual-reset event,
/// which every operation here resets first (`WSAEnumNetworkEvents`), so that it
/// means "something new happened" and the loop never spins on an old event.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    event: OwnedHandle,
    /// The outcome of the connect (a Winsock error code, 0 for success), once
    /// `FD_CONNECT` was reported.
    connected: Cell<Option<i32>>,
}

impl Connection {
    /// Starts connecting to `addr` without waiting.
    pub fn start(addr: &SocketAddr) -> io::Result<Connection> {
        winsock_started()?;
        let (family, storage, len) = socket_address(addr);
        // SAFETY: plain values; returns a new socket or INVALID_SOCKET.
        let socket = unsafe {
            WSASocketW(
                i32::from(family),
                SOCK_STREAM,
                IPPROTO_TCP,
                std::ptr::null(),
                0,
                WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT,
            )
        };
        if socket == INVALID_SOCKET {
            return Err(winsock_error());
        }
        // SAFETY: a new socket that nobody else owns.
        let stream = unsafe { TcpStream::from_raw_socket(socket as RawSocket) };
        let event = manual_event()?;
        let events = (FD_CONNECT | FD_READ | FD_WRITE | FD_CLOSE) as i32;
        // SAFETY: a valid socket and event; this also makes the socket non-blocking.
        if unsafe { WSAEventSelect(socket, raw(&event) as WSAEVENT, events) } != 0 {
            return Err(winsock_error());
        }
        // SAFETY: `storage` holds a valid address of `len` bytes for the call.
        let rc = unsafe { connect(socket, (&storage as *const SOCKADDR_STORAGE).cast(), len) };
        if rc != 0 {
            let error = winsock_error();
            if error.raw_os_error() != Some(WSAEWOULDBLOCK) {
                return Err(error);
            }
        }
        Ok(Connection {
            stream,
            event,
            connected: Cell::new(None),
        })
    }

    /// Signalled when something happened on the connection since the last look.
    pub fn waitable(&self, _interest: Interest) -> Waitable<'_> {
        self.event.as_handle()
    }

    /// Resets the event and takes note of the connect's outcome if it came.
    fn look(&self) {
        // SAFETY: plain data; all-zero is a valid value to overwrite.
        let mut happened: WSANETWORKEVENTS = unsafe { zeroed() };
        // SAFETY: a valid socket and event, and a structure that lives for the call.
        let rc = unsafe {
            WSAEnumNetworkEvents(
                self.stream.as_raw_socket() as SOCKET,
                raw(&self.event) as WSAEVENT,
                &mut happened,
            )
        };
        if rc == 0 && happened.lNetworkEvents & FD_CONNECT as i32 != 0 {
            self.connected
                .set(Some(happened.iErrorCode[FD_CONNECT_BIT as usize]));
        }
    }

    /// Whether the connect has finished: `None` while it is under way.
    pub fn finished(&self) -> Option<io::Result<()>> {
        self.look();
        match self.connected.get()? {
            0 => Some(Ok(())),
            code => Some(Err(io::Error::from_raw_os_error(code))),
        }
    }

    /// Reads what has arrived, never blocking (`WouldBlock` when nothing has).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.look();
        (&self.stream).read(buf)
    }

    /// Writes what fits now, never blocking.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.look();
        (&self.stream).write(buf)
    }
}

/// How many TCP connections are established with local port `port` (IPv4 and
/// IPv6), from the IP Helper's connection tables: for `--idle-timeout`.
/// `_tree` (the server's processes) is not needed: the tables are filtered by port.
pub fn established_connections(
    port: u16,
    _tree: impl FnOnce() -> Vec<crate::process::Pid>,
) -> io::Result<usize> {
    let v4 = tcp_table(|table: *mut MIB_TCPTABLE, size| {
        // SAFETY: `table` is NULL (a size query) or a buffer of `*size` bytes.
        unsafe { GetTcpTable(table, size, 0) }
    })?;
    let v6 = tcp_table(|table: *mut MIB_TCP6TABLE, size| {
        // SAFETY: as above.
        unsafe { GetTcp6Table(table, size, 0) }
    })?;
    let on_port = |local: u32| u16::from_be(local as u16) == port;
    // SAFETY: each table holds `dwNumEntries` rows inside its buffer (see tcp_table).
    let count = unsafe {
        rows(&v4, |t: &MIB_TCPTABLE| (t.dwNumEntries, t.table.as_ptr()))
            .iter()
            .filter(|r| r.Anonymous.State == MIB_TCP_STATE_ESTAB && on_port(r.dwLocalPort))
            .count()
            + rows(&v6, |t: &MIB_TCP6TABLE| (t.dwNumEntries, t.table.as_ptr()))
                .iter()
                .filter(|r| r.State == MIB_TCP_STATE_ESTAB && on_port(r.dwLocalPort))
                .count()
    };
    Ok(count)
}

/// One IP Helper table (`get` is `GetTcpTable` or `GetTcp6Table`), in a buffer of
/// usize words, so that it is aligned for the table; asked again while it grows.
fn tcp_table<T>(get: impl Fn(*mut T, *mut u32) -> u32) -> io::Result<Vec<usize>> {
    let mut size = 0u32;
    let mut buffer: Vec<usize> = Vec::new();
    loop {
        let table = if buffer.is_empty() {
            std::ptr::null_mut()
        } else {
            buffer.as_mut_ptr().cast()
        };
        match get(table, &mut size) {
            0 if !buffer.is_empty() => return Ok(buffer),
            0 | ERROR_INSUFFICIENT_BUFFER => {
                buffer = vec![0usize; (size as usize).div_ceil(size_of::<usize>()).max(1)];
            }
            error => return Err(io::Error::from_raw_os_error(error as i32)),
        }
    }
}

/// The rows of a table filled by [`tcp_table`].
///
/// # Safety
/// `buffer` must hold a table of type `T` whose first `count` rows (as `fields`
/// reads them) lie inside it.
unsafe fn rows<T, R>(buffer: &[usize], fields: impl Fn(&T) -> (u32, *const R)) -> &[R] {
    // SAFETY: the buffer holds a `T` and is aligned for it (the caller's promise).
    let (count, first) = fields(unsafe { &*(buffer.as_ptr() as *const T) });
    // SAFETY: the caller's promise: `count` rows from `first`, inside the buffer.
    unsafe { std::slice::from_raw_parts(first, count as usize) }
}

/// Starts Winsock for this process (once; std does so too, lazily, for its own
/// sockets, and the count of starts is never taken back).
fn winsock_started() -> io::Result<()> {
    static STARTED: OnceLock<i32> = OnceLock::new();
    let rc = *STARTED.get_or_init(|| {
        // SAFETY: plain data; the call fills it.
        let mut data: WSADATA = unsafe { zeroed() };
        // SAFETY: a valid version and a structure that lives for the call.
        unsafe { WSAStartup(0x202, &mut data) }
    });
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

fn winsock_error() -> io::Error {
    // SAFETY: reads this thread's last Winsock error.
    io::Error::from_raw_os_error(unsafe { WSAGetLastError() })
}

/// A socket address in the C layout `connect` takes.
fn socket_address(addr: &SocketAddr) -> (ADDRESS_FAMILY, SOCKADDR_STORAGE, i32) {
    // SAFETY: plain data; all zeroes is a valid value.
    let mut storage: SOCKADDR_STORAGE = unsafe { zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: plain data; all zeroes is a valid value.
            let mut sin: SOCKADDR_IN = unsafe { zeroed() };
            sin.sin_family = AF_INET;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.S_un.S_addr = u32::from_ne_bytes(a.ip().octets());
            // SAFETY: SOCKADDR_STORAGE is large enough and aligned for any address.
            unsafe { std::ptr::write((&mut storage as *mut SOCKADDR_STORAGE).cast(), sin) };
            (AF_INET, storage, size_of::<SOCKADDR_IN>() as i32)
        }
        SocketAddr::V6(a) => {
            // SAFETY: plain data; all zeroes is a valid value.
            let mut sin6: SOCKADDR_IN6 = unsafe { zeroed() };
            sin6.sin6_family = AF_INET6;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr.u.Byte = a.ip().octets();
            sin6.Anonymous.sin6_scope_id = a.scope_id();
            // SAFETY: as above.
            unsafe { std::ptr::write((&mut storage as *mut SOCKADDR_STORAGE).cast(), sin6) };
            (AF_INET6, storage, size_of::<SOCKADDR_IN6>() as i32)
        }
    }
}

/// The longest local socket name here: a named pipe's (`\\.\pipe\` and up to 256
/// characters in all).
pub const MAX_SOCKET_PATH: usize = 256;
/// How every named pipe's name starts.
const PIPE_NAMESPACE: &str = r"\\.\pipe\";

/// Why `name` cannot name a local socket here: on Windows it is a named pipe,
/// `\\.\pipe\NAME`.
pub fn socket_name_problem(name: &str) -> Option<&'static str> {
    let rest = name
        .get(..PIPE_NAMESPACE.len())
        .filter(|head| head.eq_ignore_ascii_case(PIPE_NAMESPACE))
        .map(|_| &name[PIPE_NAMESPACE.len()..]);
    match rest {
        None => Some(r"on Windows --socket takes a named pipe, \\.\pipe\NAME"),
        Some("") => Some("the pipe needs a name"),
        Some(_) => None,
    }
}

/// A named pipe is no file: nothing is ever "a socket" in the file system here.
pub fn is_socket(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Nothing can stand in a named pipe's place: the pipe namespace holds pipes only.
pub fn socket_in_the_way(_path: &std::path::Path) -> io::Result<Option<String>> {
    Ok(None)
}

/// One connect to the named pipe, never waiting, closed at once: `Ok` when a
/// server has it (every instance busy is a server too).
pub fn socket_connect(path: &std::path::Path) -> io::Result<()> {
    let name = path
        .to_str()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    match super::pipe::PipeStream::connect(name, std::time::Duration::ZERO) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(()),
        Err(e) => Err(e),
    }
}

/// `--idle-timeout` cannot count a named pipe's connections here: not built.
pub const SOCKET_CONNECTIONS_COUNTED: bool = false;

/// Not built on Windows (`SOCKET_CONNECTIONS_COUNTED`): config refuses the option.
pub fn socket_connections(_path: &std::path::Path) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "counting a named pipe's connections is not built on Windows",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn established_connections_are_counted_on_their_port() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(established_connections(port, Vec::new).unwrap(), 0);
        let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_server, _) = listener.accept().unwrap();
        // The accepted side has the listening port as its local port; the
        // client's local port is another.
        assert_eq!(established_connections(port, Vec::new).unwrap(), 1);
    }

    #[test]
    fn a_named_pipe_accepts_by_its_name_and_a_missing_one_is_not_found() {
        let name = super::super::pipe::unique_pipe_name("probe").unwrap();
        let path = std::path::Path::new(&name);
        assert_eq!(
            socket_connect(path).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let _listener = super::super::pipe::PipeListener::create(&name).unwrap();
        socket_connect(path).unwrap();
        assert_eq!(socket_name_problem(&name), None);
        assert_eq!(socket_in_the_way(path).unwrap(), None);
        for bad in [r"C:\tmp\b.sock", r"\\.\pipe\", "/tmp/b.sock"] {
            assert!(socket_name_problem(bad).is_some(), "{bad}");
        }
    }
}
