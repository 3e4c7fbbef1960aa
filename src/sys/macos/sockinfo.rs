//! The layout of macOS's `proc_pidfdinfo(PROC_PIDFDSOCKETINFO)` answer (`struct
//! socket_fdinfo` of XNU's `sys/proc_info.h`, which the `libc` crate does not
//! carry), and the count of a port's established connections read from such
//! answers, without touching the OS: `macos/net.rs` fetches them for each
//! descriptor of the server's tree, this reads them. Plain portable code, built for
//! the tests on every platform too (see `sys/mod.rs`), so that the Linux unit tests
//! run the count that macOS's `--idle-timeout` relies on.

/// `SOCKINFO_TCP`: `soi_proto` holds a `tcp_sockinfo`.
pub const SOCKINFO_TCP: i32 = 2;
/// `TSI_S_ESTABLISHED`: `tcpsi_state` of an established connection.
pub const TSI_S_ESTABLISHED: i32 = 4;
/// macOS's `AF_INET` and `AF_INET6` (30 there, unlike Linux's 10).
pub const AF_INET: i32 = 2;
pub const AF_INET6: i32 = 30;

/// `struct proc_fileinfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcFileInfo {
    pub fi_openflags: u32,
    pub fi_status: u32,
    pub fi_offset: i64,
    pub fi_type: i32,
    pub fi_guardflags: u32,
}

/// `struct vinfo_stat`: a copy of `stat64` with fixed-size fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VinfoStat {
    pub vst_dev: u32,
    pub vst_mode: u16,
    pub vst_nlink: u16,
    pub vst_ino: u64,
    pub vst_uid: u32,
    pub vst_gid: u32,
    /// atime, mtime, ctime and birthtime, each seconds then nanoseconds.
    pub vst_times: [i64; 8],
    pub vst_size: i64,
    pub vst_blocks: i64,
    pub vst_blksize: i32,
    pub vst_flags: u32,
    pub vst_gen: u32,
    pub vst_rdev: u32,
    pub vst_qspare: [i64; 2],
}

/// `struct sockbuf_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockbufInfo {
    pub sbi_cc: u32,
    pub sbi_hiwat: u32,
    pub sbi_mbcnt: u32,
    pub sbi_mbmax: u32,
    pub sbi_lowat: u32,
    pub sbi_flags: i16,
    pub sbi_timeo: i16,
}

/// `struct in_sockinfo`. The ports are `in_port_t` values (network byte order)
/// stored in an `int`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InSockInfo {
    pub insi_fport: i32,
    pub insi_lport: i32,
    pub insi_gencnt: u64,
    pub insi_flags: u32,
    pub insi_flow: u32,
    pub insi_vflag: u8,
    pub insi_ip_ttl: u8,
    pub rfu_1: u32,
    pub insi_faddr: [u32; 4],
    pub insi_laddr: [u32; 4],
    /// `insi_v4`: the type of service.
    pub insi_v4_tos: u8,
    pub insi_v6: InSockInfoV6,
}

/// `insi_v6` of `struct in_sockinfo`, a struct of its own (4-byte aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InSockInfoV6 {
    pub in6_hlim: u8,
    pub in6_cksum: i32,
    pub in6_ifindex: u16,
    pub in6_hops: i16,
}

/// `struct tcp_sockinfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpSockInfo {
    pub tcpsi_ini: InSockInfo,
    pub tcpsi_state: i32,
    pub tcpsi_timer: [i32; 4],
    pub tcpsi_mss: i32,
    pub tcpsi_flags: u32,
    pub rfu_1: u32,
    pub tcpsi_tp: u64,
}

/// The size of `soi_proto`, a union whose largest member is `un_sockinfo` (two
/// `u64` handles and two 255-byte addresses), rounded up to its 8-byte alignment.
const PROTO_SIZE: usize = 528;

/// `soi_proto`, read as the one member used here: the TCP part, which is what it
/// holds when `soi_kind` is [`SOCKINFO_TCP`]; the rest of the union's bytes follow.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Proto {
    pub tcp: TcpSockInfo,
    pub rest: [u8; PROTO_SIZE - std::mem::size_of::<TcpSockInfo>()],
}

/// `struct socket_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SocketInfo {
    pub soi_stat: VinfoStat,
    /// The kernel's address of the socket: one value per socket, however many
    /// descriptors (in however many processes) refer to it.
    pub soi_so: u64,
    pub soi_pcb: u64,
    pub soi_type: i32,
    pub soi_protocol: i32,
    pub soi_family: i32,
    pub soi_options: i16,
    pub soi_linger: i16,
    pub soi_state: i16,
    pub soi_qlen: i16,
    pub soi_incqlen: i16,
    pub soi_qlimit: i16,
    pub soi_timeo: i16,
    pub soi_error: u16,
    pub soi_oobmark: u32,
    pub soi_rcv: SockbufInfo,
    pub soi_snd: SockbufInfo,
    pub soi_kind: i32,
    pub rfu_1: u32,
    pub soi_proto: Proto,
}

/// `struct socket_fdinfo`: what `proc_pidfdinfo(PROC_PIDFDSOCKETINFO)` writes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SocketFdInfo {
    pub pfi: ProcFileInfo,
    pub psi: SocketInfo,
}

// The layout XNU's header gives on every 64-bit Mac (LP64, natural alignment):
// 792 bytes in all, as `lsof` and psutil rely on too.
const _: () = assert!(std::mem::offset_of!(InSockInfo, insi_lport) == 4);
const _: () = assert!(std::mem::offset_of!(InSockInfo, insi_faddr) == 32);
const _: () = assert!(std::mem::offset_of!(InSockInfo, insi_v6) == 68);
const _: () = assert!(std::mem::size_of::<InSockInfo>() == 80);
const _: () = assert!(std::mem::offset_of!(TcpSockInfo, tcpsi_state) == 80);
const _: () = assert!(std::mem::offset_of!(SocketInfo, soi_so) == 136);
const _: () = assert!(std::mem::offset_of!(SocketInfo, soi_family) == 160);
const _: () = assert!(std::mem::size_of::<TcpSockInfo>() == 120);
const _: () = assert!(std::mem::size_of::<VinfoStat>() == 136);
const _: () = assert!(std::mem::offset_of!(SocketInfo, soi_kind) == 232);
const _: () = assert!(std::mem::offset_of!(SocketInfo, soi_proto) == 240);
const _: () = assert!(std::mem::size_of::<SocketInfo>() == 768);
const _: () = assert!(std::mem::size_of::<SocketFdInfo>() == 792);

impl SocketFdInfo {
    /// All zeroes: a valid value of every field, for the kernel to overwrite.
    pub fn zeroed() -> SocketFdInfo {
        SocketFdInfo {
            pfi: ProcFileInfo::default(),
            psi: SocketInfo {
                soi_stat: VinfoStat::default(),
                soi_so: 0,
                soi_pcb: 0,
                soi_type: 0,
                soi_protocol: 0,
                soi_family: 0,
                soi_options: 0,
                soi_linger: 0,
                soi_state: 0,
                soi_qlen: 0,
                soi_incqlen: 0,
                soi_qlimit: 0,
                soi_timeo: 0,
                soi_error: 0,
                soi_oobmark: 0,
                soi_rcv: SockbufInfo::default(),
                soi_snd: SockbufInfo::default(),
                soi_kind: 0,
                rfu_1: 0,
                soi_proto: Proto {
                    tcp: TcpSockInfo::default(),
                    rest: [0; PROTO_SIZE - std::mem::size_of::<TcpSockInfo>()],
                },
            },
        }
    }

    /// The socket's kernel handle if it is an IPv4 or IPv6 TCP connection in
    /// state ESTABLISHED whose local port is `port`: one accepted by a server
    /// listening there (a listening socket, or the server's own connection to
    /// another port, is not one).
    pub fn established_on(&self, port: u16) -> Option<u64> {
        let psi = &self.psi;
        let tcp = &psi.soi_proto.tcp;
        // The port is an in_port_t in network byte order, kept in an int.
        let local = u16::from_be(tcp.tcpsi_ini.insi_lport as u16);
        (psi.soi_kind == SOCKINFO_TCP
            && matches!(psi.soi_family, AF_INET | AF_INET6)
            && tcp.tcpsi_state == TSI_S_ESTABLISHED
            && local == port)
            .then_some(psi.soi_so)
    }
}

/// How many distinct connections established on `port` these answers show: a
/// socket that several descriptors or processes share (inherited across fork,
/// passed over a socket) is one connection.
pub fn count_established<'a>(
    answers: impl IntoIterator<Item = &'a SocketFdInfo>,
    port: u16,
) -> usize {
    let mut sockets: Vec<u64> = answers
        .into_iter()
        .filter_map(|answer| answer.established_on(port))
        .collect();
    sockets.sort_unstable();
    sockets.dedup();
    sockets.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer as the kernel writes it for a TCP socket.
    fn tcp(so: u64, family: i32, state: i32, local_port: u16) -> SocketFdInfo {
        let mut answer = SocketFdInfo::zeroed();
        answer.psi.soi_so = so;
        answer.psi.soi_kind = SOCKINFO_TCP;
        answer.psi.soi_family = family;
        answer.psi.soi_proto.tcp.tcpsi_state = state;
        answer.psi.soi_proto.tcp.tcpsi_ini.insi_lport = i32::from(local_port.to_be());
        answer.psi.soi_proto.tcp.tcpsi_ini.insi_fport = i32::from(50_000u16.to_be());
        answer
    }

    #[test]
    fn only_established_tcp_connections_on_the_port_count_each_socket_once() {
        let port = 4096;
        let answers = [
            tcp(1, AF_INET, TSI_S_ESTABLISHED, port),
            // The same socket through a second descriptor (or a forked child).
            tcp(1, AF_INET, TSI_S_ESTABLISHED, port),
            tcp(2, AF_INET6, TSI_S_ESTABLISHED, port),
            // The listening socket itself.
            tcp(3, AF_INET, 1, port),
            // A connection closing.
            tcp(4, AF_INET, 6, port),
            // The server's own connection out, from an ephemeral port.
            tcp(5, AF_INET, TSI_S_ESTABLISHED, 50_000),
            // Linux's AF_INET6, which is not macOS's.
            tcp(6, 10, TSI_S_ESTABLISHED, port),
        ];
        assert_eq!(count_established(&answers, port), 2);
        let mut unix = tcp(7, 1, TSI_S_ESTABLISHED, port);
        unix.psi.soi_kind = 3;
        assert_eq!(count_established([&unix], port), 0);
        assert_eq!(count_established([], port), 0);
    }

    #[test]
    fn the_port_is_read_in_network_byte_order() {
        // 4096 is 0x1000: read in host order, the bytes would say 16.
        let answer = tcp(1, AF_INET, TSI_S_ESTABLISHED, 4096);
        assert_eq!(answer.established_on(4096), Some(1));
        assert_eq!(answer.established_on(16), None);
    }
}
