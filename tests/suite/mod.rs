//! Integration tests, one module per area of the design (docs/DESIGN.md).
//!
//! Every module is shared by all platforms except those marked `cfg(unix)`, whose
//! scenarios only Unix can show (each says why); within a shared module a
//! scenario of one family is marked likewise, with its reason.

mod completions;
mod errors;
mod faults;
// The guard: a Unix mechanism (a process of its own session, linked by a socket
// pair) for what the parent-death signal cannot reach; Windows' job needs none.
#[cfg(unix)]
mod guard;
// not ported to Windows: the handshake on its own, over descriptor 3 (Windows
// hands the channel over as an inherited pipe handle inside `spawn_detached`,
// which `up`'s scenarios use).
#[cfg(unix)]
mod handoff;
mod harness;
mod idle;
mod inputs;
mod records;
mod run;
mod session;
// Servers on Unix sockets, NOTIFY_SOCKET and descriptor readiness: Unix only.
#[cfg(unix)]
mod socket;
// Cgroups, and group mode's signals (SIGTERM counts, chains that ignore it,
// decoys that block it): Unix only. (Its one portable scenario, a walk of a
// thousand processes, is not ported: Windows' group mode is built, not run.)
// Windows' job object is shown by the shared scenarios.
#[cfg(unix)]
mod tree;
mod up;
