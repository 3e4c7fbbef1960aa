//! Declared readiness, on macOS: no notify socket. macOS's datagram sockets do
//! not say who sent a message, so `READY=1` from outside the server's tree could
//! not be told apart; `--ready notify` is refused here (`--ready fd:N` is built,
//! in `sys/unix/ready.rs`). See `docs/DESIGN.md`, section "Platform seam".

/// `--ready notify` is not built here.
pub const NOTIFY_READINESS: bool = false;

pub use crate::sys::unbuilt::NotifySocket;
