// Shared by the package's tests: free ports, private state dirs, stand-in
// sessions, a stand-in binary, and waits with deadlines (Node has no pidfds, so a
// process's end is looked for every 20 ms until the deadline, and the failure
// says what did not happen).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const DEADLINE_MS = 30_000;

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

export function stateDir() {
  return join(mkdtempSync(join(tmpdir(), "ocwrap-npm-")), "state");
}

/** A long-lived process standing for a session; killed by the returned stop(). */
export function session() {
  const child = spawn("sleep", ["1000"], { stdio: "ignore" });
  return { pid: child.pid, end: () => child.kill("SIGKILL") };
}

export function exists(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    if (e.code === "ESRCH") return false;
    throw e;
  }
}

export function answers(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

/** Waits until `condition()` (sync or async) holds; throws `what` at the deadline. */
export async function until(what, condition, deadlineMs = DEADLINE_MS) {
  const end = Date.now() + deadlineMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

/** Waits until the process is gone and (given a port) nothing answers on the port. */
export async function gone(what, pid, port) {
  await until(`${what}: pid ${pid} gone`, () => !exists(pid));
  if (port !== undefined) await until(`${what}: port ${port} free`, async () => !(await answers(port)));
}

/**
 * A stand-in for the ocwrap binary: a script that records the argv of each run
 * and prints `answer` on stdout (and `stderr` on stderr), exiting with `code`.
 * `runs()` is every run's argv, as arrays, in order (none: []).
 */
export function fakeBinary({ answer = "", stderr = "", code = 0 } = {}) {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "ocwrap-fake-")));
  const log = join(dir, "runs");
  writeFileSync(join(dir, "answer"), answer);
  writeFileSync(join(dir, "stderr"), stderr);
  const script = join(dir, "ocwrap");
  // One argument a line, a line "." after each run: the tests' arguments have no newline.
  writeFileSync(
    script,
    `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done >> '${log}'\necho . >> '${log}'\n` +
      `cat '${dir}/answer'\ncat '${dir}/stderr' >&2\nexit ${code}\n`,
    { mode: 0o755 },
  );
  const runs = () => {
    if (!existsSync(log)) return [];
    const lines = readFileSync(log, "utf8").split("\n").slice(0, -1);
    const all = [[]];
    for (const line of lines) line === "." ? all.push([]) : all.at(-1).push(line);
    return all.slice(0, -1);
  };
  return { path: script, runs };
}

/**
 * Runs `fn` with OCWRAP_BINARY set to `binary` (the package reads it at each call),
 * and puts it back after. The tests of a file run one after another, so no other
 * call sees it.
 */
export async function withBinary(binary, fn) {
  const before = process.env.OCWRAP_BINARY;
  process.env.OCWRAP_BINARY = binary;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.OCWRAP_BINARY;
    else process.env.OCWRAP_BINARY = before;
  }
}
