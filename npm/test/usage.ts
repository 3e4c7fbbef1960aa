// Type-checked (tsc --noEmit, strict) against the installed package's index.d.ts:
// what a plugin written in TypeScript does with the API. Never run.
import { OcwrapError, binaryPath, release, status, stop, up } from "ocwrap";
import type { StatusResult, StopResult, UpOptions, UpResult } from "ocwrap";

const options: UpOptions = {
  port: 4096,
  health: "/global/health",
  ownerPid: [4242, 4343],
  idleTimeout: "30m",
  grace: 2000,
  command: ["opencode", "serve", "--hostname", "127.0.0.1", "--port", "4096"],
};

export async function ensureServer(): Promise<string> {
  try {
    const server: UpResult = await up(options);
    // null only for a server without a port (a socket, or neither).
    const url: string | null = server.url;
    if (server.status === "external") return url ?? "";
    const pid: number | null = server.pid;
    return `${url} (pid ${pid ?? "?"}, owners ${server.owners.map((o) => o.pid).join(",")})`;
  } catch (e) {
    if (e instanceof OcwrapError) {
      const status: number | null = e.exit_status;
      const tail: string | null = e.log_tail;
      throw new Error(`no server (${e.exitCode}, ${status}): ${tail ?? e.message}`);
    }
    throw e;
  }
}

export async function onSessionEnd(sessionPid: number, reason: string): Promise<void> {
  if (reason === "clear") return;
  const left = await release({ port: 4096, ownerPid: sessionPid });
  // Carried out once the supervisor runs again: nothing more to do here.
  if (left.status === "unconfirmed") return void left.message.length;
  left.owners.forEach((o) => o.start.toFixed());
}

export async function overview(): Promise<number> {
  const all: StatusResult = await status();
  const stopping = all.supervisors.filter((s) => s.record?.stop_cause === "idle");
  const stopped: StopResult = await stop({ all: true, wait: true });
  return stopping.length + stopped.stopped.length + binaryPath().length;
}

// @ts-expect-error: up needs the server's command.
up({ port: 4096 });
// @ts-expect-error: owner is "session", "parent" or "none".
up({ port: 4096, owner: "everyone", command: ["x"] });
// @ts-expect-error: release says whose lease it drops, ownerPid or all: true; an undefined owner is neither.
release({ port: 4096, ownerPid: undefined });
// @ts-expect-error: nor is leaving it out.
release({ port: 4096 });
// @ts-expect-error: ownerPID is not an option.
release({ port: 4096, ownerPID: 4242 });
// @ts-expect-error: one owner, or all: true, not both.
release({ port: 4096, ownerPid: 4242, all: true });
// @ts-expect-error: release needs the supervisor's port or name.
release({ ownerPid: 4242 });
// @ts-expect-error: a name and a port name the supervisor twice.
status({ name: "port-4096", port: 4096 });
// @ts-expect-error: stop says what to stop.
stop({});
// @ts-expect-error: all: true stops every supervisor, so a port is a contradiction.
stop({ port: 4096, all: true });
// @ts-expect-error: up needs the port (or a socket, or a name).
up({ command: ["x"] });
// @ts-expect-error: a port and a socket say twice where the server listens.
up({ port: 4096, socket: "/run/b.sock", command: ["x"] });
// @ts-expect-error: a health path is an HTTP request to a port, not a socket.
up({ socket: "/run/b.sock", health: "/h", command: ["x"] });
// @ts-expect-error: readiness is one of the forms ocwrap knows.
up({ name: "x", ready: "soon", command: ["x"] });

export async function broker(): Promise<string | null> {
  const started = await up({ socket: "/run/b.sock", ready: "notify", idleTimeout: "30m", command: ["broker"] });
  await up({ name: "n", ready: "fd:3", command: ["x"] });
  await stop({ socket: "/run/b.sock", wait: true });
  return started.socket;
}
// @ts-expect-error: an idle timeout is about a port.
up({ name: "x", command: ["x"], idleTimeout: "30m" });

export async function dropEveryLease(): Promise<number> {
  const left = await release({ name: "port-4096", all: true });
  // @ts-expect-error: an unconfirmed release has no list of the leases left.
  left.owners.length;
  return left.status === "released" ? left.owners.length : 0;
}

export function refusedOption(e: OcwrapError): string | null {
  return e.kind === "invalid_option" ? e.option : null;
}

// The session's own lease, named as up named it, and the binary's error kinds.
export async function sessionServer(): Promise<string> {
  try {
    const server = await up({ port: 4096, owner: "session", cwd: "/work", command: ["opencode", "serve"] });
    const mine = server.leases.map((l) => `${l.pid}:${l.found_by}`).join(",");
    const left = await release({ port: 4096, owner: "session" });
    return `${mine} ${left.status === "released" ? left.found_by : left.message}`;
  } catch (e) {
    if (e instanceof OcwrapError && (e.kind === "not_running" || e.kind === "no_owner_found")) return e.kind;
    throw e;
  }
}
// @ts-expect-error: release drops one owner's lease: two owners contradict.
release({ port: 4096, owner: "session", ownerPid: 4242 });
// @ts-expect-error: "none" names no lease to drop.
release({ port: 4096, owner: "none" });
// @ts-expect-error: no such error kind.
export const noSuchKind = (e: OcwrapError): boolean => e.kind === "not_a_kind";
