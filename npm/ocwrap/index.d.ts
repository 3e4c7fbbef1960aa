// Types of the ocwrap package's API (index.js). Field names of the results are the
// binary's JSON, as the project's README gives it.

/** A duration as ocwrap reads it ("250ms", "5s", "2m", "1h"), or milliseconds. */
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

/** Which supervisor a call is about: its name, or its port (name `port-P`). */
export interface SelectOptions extends CommonOptions {
  name?: string;
  port?: number;
}

export interface UpOptions extends SelectOptions {
  /** The server's argv: the program and its arguments. */
  command: string[];
  /** Owners: the server lives while any of them does (default: the calling process). */
  ownerPid?: number | number[];
  /** The nearest ancestor of the calling process with this name is an owner. */
  ownerAncestor?: string;
  /** "parent": the calling process is an owner; "none": no owner, runs until stopped. */
  owner?: "parent" | "none";
  /** Where to probe the port; must be loopback (default 127.0.0.1). */
  host?: string;
  /** HTTP path that answers 2xx once the server is ready (default: a TCP connect). */
  health?: string;
  readyTimeout?: Duration;
  grace?: Duration;
  linger?: Duration;
  /** Tear down once the port has had no established connection this long (needs port). */
  idleTimeout?: Duration;
  /** The server's log (default: <stateDir>/<name>.log). */
  log?: string;
  session?: boolean;
  stdin?: "inherit" | "null";
  watchMethod?: "auto" | "pidfd" | "poll";
  contain?: "auto" | "cgroup" | "group";
  verbose?: boolean;
}

export interface UpResult {
  status: "started" | "attached" | "external";
  /** null for an external server, as are pid, pgid, supervisor_pid and log. */
  name: string | null;
  url: string;
  port: number | null;
  pid: number | null;
  pgid: number | null;
  supervisor_pid: number | null;
  owners: Owner[];
  log: string | null;
}

export interface ReleaseOptions extends SelectOptions {
  /** The owner whose lease to drop (default: every lease). */
  ownerPid?: number;
}

export interface ReleaseResult {
  status: "released";
  name: string;
  released: number | null;
  /** The leases that are left. */
  owners: Owner[];
}

export type RecordState = "starting" | "ready" | "stopping";

export type StopCause = "owners_gone" | "stop" | "idle" | "signal" | "server_exited";

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
  owners: Owner[];
  started_at: string;
  state: RecordState;
  log: string | null;
  contain: "cgroup" | "group";
  cgroup: string | null;
  /** Why the tree is being torn down; only while state is "stopping". */
  stop_cause?: StopCause;
}

export interface StatusResult {
  supervisors: Array<{
    name: string;
    live: boolean;
    problem: string | null;
    record: SupervisorRecord | null;
  }>;
}

export interface StopOptions extends SelectOptions {
  /** Every live supervisor of this user (name and port are then ignored). */
  all?: boolean;
  /** Resolve only once the whole tree is gone. */
  wait?: boolean;
}

export interface StopResult {
  status: "stopped" | "not_running";
  stopped: Array<{ name: string; supervisor_pid: number; server_pid: number }>;
  not_running: string[];
  errors: Array<{ name: string; error: string }>;
}

/** Why a call failed. */
export class OcwrapError extends Error {
  name: "OcwrapError";
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
/** Drops one owner's lease (every lease without ownerPid); does not wait for a teardown. */
export function release(options: ReleaseOptions): Promise<ReleaseResult>;
/** What ocwrap supervises now. */
export function status(options?: SelectOptions): Promise<StatusResult>;
/** Tears down what ocwrap started; "not_running" when there was nothing to stop. */
export function stop(options: StopOptions): Promise<StopResult>;
/** The binary the calls run: OCWRAP_BINARY, else the platform package's. Throws an OcwrapError when there is none. */
export function binaryPath(): string;
