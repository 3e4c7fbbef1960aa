// Types of the ocwrap package's API (index.js). Field names of the results are the
// binary's JSON, as the project's README gives it. The option types reject what
// they can (a release that names no owner and not all: true, name with port where
// they conflict, an unknown key in an object literal); index.js checks everything
// again at run time, before it runs the binary, and rejects with an OcwrapError of
// kind "invalid_option". An option that is present must hold a value: undefined
// and null are refused; leave an option out to get its default.

/**
 * A duration as ocwrap reads it ("250ms", "5s", "2m", "1h", or "30": bare seconds;
 * a fraction such as "1.5s" too), or a whole number of milliseconds; at most 365 days.
 */
export type Duration = string | number;

/** A process and its start time (clock ticks since boot): one lease. */
export interface Owner {
  pid: number;
  start: number;
}

/** Where the state lives and how the binary is run; every call takes these. */
export interface CommonOptions {
  /** Records, locks, sockets and logs (default: $XDG_RUNTIME_DIR/ocwrap, else $TMPDIR/ocwrap-UID). */
  stateDir?: string;
  /** The environment the binary runs with (default: process.env). */
  env?: Record<string, string | undefined>;
}

/**
 * Which supervisor a call is about: its name (`[A-Za-z0-9._-]{1,64}`, not starting
 * with "."), its port 1..65535 (name `port-P`), or its local socket (named as
 * `up` with that socket names it); only one of them.
 */
export type Selector =
  | { name: string; port?: never; socket?: never }
  | { port: number; name?: never; socket?: never }
  | { socket: string; name?: never; port?: never };

/** Selects one supervisor, or (status) none: every one. */
export type SelectOptions = CommonOptions & (Selector | { name?: never; port?: never; socket?: never });

/**
 * When the server is ready: "connect" (its port or socket accepts; the default
 * with one), "exec" (once started; the default without), "notify" (it sends
 * READY=1 to $NOTIFY_SOCKET; Linux), "fd:N" (it writes a newline to its
 * descriptor N, 3 to 1023; Unix).
 */
export type Ready = "connect" | "exec" | "notify" | `fd:${number}`;

/** The options of `up` besides the server's port and what needs it. */
export interface UpSettings extends CommonOptions {
  /** The server's argv: the program (non-empty) and its arguments. */
  command: string[];
  /** Owners (positive PIDs; an array must not be empty): the server lives while any of them does (default: the calling process). */
  ownerPid?: number | number[];
  /** The nearest ancestor of the calling process with this name is an owner. */
  ownerAncestor?: string;
  /**
   * "session": the Claude Code session the calling process runs under (its session
   * record, start time verified; else the nearest ancestor named `claude`), else
   * the calling process; "parent": the calling process is an owner; "none": no
   * owner, runs until stopped.
   */
  owner?: "session" | "parent" | "none";
  /** The server's working directory (default: the calling process's). */
  cwd?: string;
  /** Where to probe the port; must be loopback (default 127.0.0.1). */
  host?: string;
  /** When the server counts as ready (see Ready). */
  ready?: Ready;
  readyTimeout?: Duration;
  grace?: Duration;
  linger?: Duration;
  /** The server's log (default: <stateDir>/<name>.log). */
  log?: string;
  session?: boolean;
  stdin?: "inherit" | "null";
  watchMethod?: "auto" | "pidfd" | "poll";
  contain?: "auto" | "cgroup" | "group";
  verbose?: boolean;
}

/**
 * The options of `up`: the port (and the record's name, default `port-P`), the
 * local socket (a Unix socket path; on Windows a named pipe, `\\.\pipe\NAME`),
 * or a name alone for a server with neither, which then can have no health path
 * and no idle timeout.
 */
export type UpOptions = UpSettings &
  (
    | {
        /** The port the server listens on: readiness, and the default name. */
        port: number;
        /** The record's name (default `port-P`). */
        name?: string;
        /** HTTP path that answers 2xx once the server is ready (default: a TCP connect). */
        health?: string;
        /** Tear down once the port has had no established connection this long (longer than 0). */
        idleTimeout?: Duration;
      }
    | {
        /** The local socket the server listens on: readiness, and the default name. */
        socket: string;
        /** The record's name (default `sock-<file name>-<hash of the path>`). */
        name?: string;
        port?: never;
        health?: never;
        /** Tear down once the socket has had no established connection this long (Linux). */
        idleTimeout?: Duration;
      }
    | { name: string; port?: never; socket?: never; health?: never; idleTimeout?: never }
  );

/** How an owner was found (`--verbose` says it too). */
export type FoundBy =
  | "pid"
  | "parent"
  | "ancestor"
  | "session_record"
  | "session_id"
  | "session_name";

/** One of the caller's leases: the owner and how it was found. */
export interface Lease extends Owner {
  found_by: FoundBy;
}

export interface UpResult {
  status: "started" | "attached" | "external";
  /** null for an external server, as are pid, pgid, supervisor_pid and log. */
  name: string | null;
  /** The TCP endpoint's; null with a socket or with neither. */
  url: string | null;
  port: number | null;
  /** The local socket's; null without one. */
  socket: string | null;
  /** How readiness was judged. */
  ready: Ready | "health";
  pid: number | null;
  pgid: number | null;
  supervisor_pid: number | null;
  /** Every lease the server has now, the caller's and other sessions'. */
  owners: Owner[];
  /** The caller's leases (the owners this call named); empty for an external server. */
  leases: Lease[];
  log: string | null;
}

/**
 * Whose lease to drop: one owner's, named as `up` named it (`ownerPid`, `owner`
 * or `ownerAncestor`), or every lease (`all: true`), which tears the server down
 * under every session that shares it. Exactly one of the four is required, so an
 * owner that is undefined is an error, never "all".
 */
export type ReleaseOptions = CommonOptions &
  Selector &
  (
    | {
        /** The owner whose lease to drop: a positive PID. */
        ownerPid: number;
        owner?: never;
        ownerAncestor?: never;
        all?: never;
      }
    | {
        /** The session's lease ("session"), or the calling process's ("parent"), found as `up` finds them. */
        owner: "session" | "parent";
        ownerPid?: never;
        ownerAncestor?: never;
        all?: never;
      }
    | {
        /** The lease of the nearest ancestor with this name. */
        ownerAncestor: string;
        ownerPid?: never;
        owner?: never;
        all?: never;
      }
    | {
        /** Drop every lease. */
        all: true;
        ownerPid?: never;
        owner?: never;
        ownerAncestor?: never;
      }
  );

export type ReleaseResult =
  | {
      status: "released";
      name: string;
      released: number | null;
      /** How the released owner was found; null with `all: true`. */
      found_by: FoundBy | null;
      /** The leases that are left. */
      owners: Owner[];
    }
  | {
      /**
       * The request went out whole but the supervisor did not answer in time (a
       * stopped one, say): it is carried out when the supervisor runs again.
       */
      status: "unconfirmed";
      name: string;
      released: number | null;
      found_by: FoundBy | null;
      message: string;
    };

export type RecordState = "starting" | "ready" | "stopping";

export type StopCause = "owners_gone" | "stop" | "idle" | "signal" | "server_exited" | "guard_gone";

/** A supervisor's record (`<name>.json`). */
export interface SupervisorRecord {
  version: number;
  name: string | null;
  supervisor: Owner;
  server: { pid: number; pgid: number; start: number };
  command: string[];
  cwd: string;
  port: number | null;
  url: string | null;
  socket: string | null;
  /** How readiness is judged ("" in records of older versions). */
  ready: Ready | "health" | "";
  owners: Owner[];
  started_at: string;
  state: RecordState;
  log: string | null;
  contain: "cgroup" | "group";
  cgroup: string | null;
  /** Why the tree is being torn down; only while state is "stopping". */
  stop_cause?: StopCause;
  /** The server exited 0 and left its tree running, which ocwrap follows. */
  daemonized?: boolean;
}

export interface StatusResult {
  supervisors: Array<{
    name: string;
    live: boolean;
    problem: string | null;
    record: SupervisorRecord | null;
  }>;
}

/** What to stop: one supervisor (name or port), or `all: true`, every live one of this user. */
export type StopOptions = CommonOptions & {
  /** Resolve only once the whole tree is gone. */
  wait?: boolean;
} & ((Selector & { all?: false }) | { all: true; name?: never; port?: never; socket?: never });

export interface StopResult {
  status: "stopped" | "not_running";
  stopped: Array<{ name: string; supervisor_pid: number; server_pid: number }>;
  not_running: string[];
  /** Sent whole, not answered in time (a stopped supervisor stops when it runs again). */
  unconfirmed: Array<{ name: string; kind: OcwrapErrorKind; error: string }>;
  /** With `wait`: not answered in time, and gone since. */
  stopped_unconfirmed: string[];
  errors: Array<{ name: string; kind: OcwrapErrorKind; error: string }>;
}

/**
 * The kinds the binary reports (`kind` of its `--json` errors), stable words
 * documented in README, "Error kinds": new ones may be added, none is renamed.
 */
export type BinaryErrorKind =
  | "usage"
  | "hook_input"
  | "command_not_found"
  | "command_not_executable"
  | "spawn_failed"
  | "no_owner_found"
  | "owner_not_running"
  | "owner_immortal"
  | "watch_unavailable"
  | "cwd_unusable"
  | "log_unusable"
  | "state_dir_unusable"
  | "state_dir_unsafe"
  | "socket_path_too_long"
  | "in_the_way"
  | "name_held"
  | "not_running"
  | "control_failed"
  | "not_owner"
  | "version_mismatch"
  | "not_ready"
  | "server_exited"
  | "owners_gone"
  | "stopped"
  | "supervisor_failed"
  | "internal";

/**
 * What went wrong, for a program to branch on (never the message): the binary's
 * kind when it ran and failed, else "invalid_option" (an option was refused;
 * nothing ran), "no_binary" (there is no binary to run: no package for this
 * platform, the package not installed, its binary missing, not executable or built
 * for another platform, or a binary the system cannot start), "invalid_answer"
 * (the binary's output was not one JSON object), or "failed" (a failure that
 * carried no kind).
 */
export type OcwrapErrorKind = BinaryErrorKind | "invalid_option" | "no_binary" | "invalid_answer" | "failed";

/** Why a call failed. */
export class OcwrapError extends Error {
  name: "OcwrapError";
  kind: OcwrapErrorKind;
  /** The refused option ("ownerPid", "command[1]", "env.PATH", …) for "invalid_option", else null. */
  option: string | null;
  /** ocwrap's own exit code (1: failed, 2: usage, 125: ocwrap itself), or null. */
  exitCode: number | null;
  /** The server's exit status when it exited before it was ready (`up`), or null. */
  exit_status: number | null;
  /** The last lines of the server's log (`up`), or null. */
  log_tail: string | null;
  /** What ocwrap said on stderr. */
  stderr: string;
  /** The parsed JSON answer, when there was one. */
  result: unknown;
}

/** Starts the server, or attaches to the one that runs; resolves once it is ready. */
export function up(options: UpOptions): Promise<UpResult>;
/** Drops one owner's lease (ownerPid, owner, ownerAncestor), or every lease (all: true); does not wait for a teardown. */
export function release(options: ReleaseOptions): Promise<ReleaseResult>;
/** What ocwrap supervises now. */
export function status(options?: SelectOptions): Promise<StatusResult>;
/** Tears down what ocwrap started; "not_running" when there was nothing to stop. */
export function stop(options: StopOptions): Promise<StopResult>;
/**
 * The binary the calls run: OCWRAP_BINARY, else the platform package's
 * (`@ocwrap/<platform>-<arch>`, one of linux-x64, linux-arm64, darwin-arm64,
 * darwin-x64, win32-x64, win32-arm64) once it is checked to be there, executable,
 * and of this platform's format and CPU. Throws an OcwrapError of kind "no_binary"
 * that names the platform and what to do when there is none.
 */
export function binaryPath(): string;
