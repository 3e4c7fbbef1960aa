//! Linux's side of the platform seam: what Linux answers differently from macOS
//! (`/proc`, pidfds and epoll, `PR_SET_PDEATHSIG`, inotify, cgroup v2, `sock_diag`),
//! one file per concern. What the two answer alike is `sys/unix/`. See
//! `docs/DESIGN.md`, section "Platform seam".

mod contain;
mod control;
mod fixture;
mod fs;
mod leftover;
mod memory;
mod net;
mod proc;
mod ready;
mod signal;
mod spawn;
mod wait;

// Who a process is: `/proc/PID/stat`, its names, its environment, its children.
pub use proc::{
    all_processes, children, children_listed, environ_has, is_kernel_thread, proc_info,
    proc_lookup, process_names,
};

// Waiting: pidfds and the epoll set. The hooks are for `sys/unix/` only (our child's
// exit, asked without reaping it; whether stderr takes a line now).
pub use wait::{EventSet, PidFd, pidfd_supported};
pub(in crate::sys) use wait::{exited_successfully, has_exited, writable_now};

// Spawning: the subreaper, and the hook `sys/unix/spawn.rs` runs between fork and exec.
pub(in crate::sys) use spawn::die_with_supervisor;
pub use spawn::{GUARDING, become_child_subreaper};

// Containment: the server's cgroup; and what a dead supervisor's cgroup left.
pub use contain::Cgroup;
pub use leftover::{kill_leftover, remove_empty_leftovers};

// The state dir: file watching (inotify).
pub use fs::FileWatch;

// The control socket: hooks for `sys/unix/control.rs` (peer credentials, addresses).
pub(in crate::sys) use control::{
    BACKLOG_FULL, MAX_SOCKET_PATH, peer_pid, peer_uid, unix_socket_address,
};

// The network: established connections on a port or a local socket.
pub use net::{SOCKET_CONNECTIONS_COUNTED, established_connections, socket_connections};

// Declared readiness: the notify socket.
pub use ready::{NOTIFY_READINESS, NotifySocket};

// Memory: the start-up pages given back once idle.
pub use memory::release_startup_pages;

// For the tests and `src/bin/ocwrap-fixture.rs` only.
pub use fixture::{
    exit_this_thread, fork_idle_children, is_no_such_process, pending_signals,
    voluntary_context_switches,
};
