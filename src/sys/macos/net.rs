//! The network, on macOS: no count of a port's established connections (not built:
//! `--idle-timeout` then counts the server as busy). The readiness probe's connect is
//! `sys/unix/net.rs`. Type-checked only. See `docs/DESIGN.md`, section "Platform seam".

use std::io;

/// How many TCP connections are established with local port `port`. Not built on
/// macOS (it would read the kernel's PCB list through `sysctl net.inet.tcp.pcblist_n`):
/// the error makes `--idle-timeout` count the server as busy, so it never tears
/// down early, and never on idleness.
pub fn established_connections(_port: u16) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "counting a port's connections is not built on macOS",
    ))
}
