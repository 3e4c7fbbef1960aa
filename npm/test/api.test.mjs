// The installed ocwrap package against the test fixture (OCWRAP_FIXTURE, a server
// that listens on a port and says what it does): up started / attached /
// external / failed with a log tail, release, status, stop, idle-timeout, and how
// the binary is found. Runs in a project that installed the packed tarballs, so
// `ocwrap` resolves as it does for a plugin.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, realpathSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";

import { OcwrapError, binaryPath, release, status, stop, up } from "ocwrap";

import { answers, freePort, gone, session, stateDir } from "./helpers.mjs";

const fixture = process.env.OCWRAP_FIXTURE;
assert.ok(fixture, "OCWRAP_FIXTURE names the fixture binary");

const dirs = [];
const sessions = [];
after(async () => {
  for (const dir of dirs) await stop({ all: true, wait: true, stateDir: dir });
  for (const s of sessions) s.end();
});

function setUp() {
  const dir = stateDir();
  dirs.push(dir);
  return dir;
}

function owner() {
  const s = session();
  sessions.push(s);
  return s;
}

const serve = (port) => [fixture, "tree", "--listen", String(port), "--children", "1"];

test("the binary is the platform package's, and ocwrap runs", () => {
  const binary = binaryPath();
  assert.match(binary, /node_modules\/@ocwrap\/linux-x64\/bin\/ocwrap$/);
  const version = execFileSync(binary, ["--version"], { encoding: "utf8" });
  assert.match(version, /^ocwrap \d+\.\d+\.\d+/);
});

test("up starts a server, a second session attaches, releases tear it down", async () => {
  const stateDir = setUp();
  const port = await freePort();
  const [first, second] = [owner(), owner()];
  const options = { port, stateDir, health: "/health", command: serve(port) };
  const started = await up({ ...options, ownerPid: first.pid });
  assert.equal(started.status, "started");
  assert.equal(started.url, `http://127.0.0.1:${port}`);
  assert.equal(started.name, `port-${port}`);
  assert.deepEqual(
    started.owners.map((o) => o.pid),
    [first.pid],
  );
  assert.ok(await answers(port));

  const attached = await up({ ...options, ownerPid: second.pid });
  assert.equal(attached.status, "attached");
  assert.equal(attached.pid, started.pid);

  const { supervisors } = await status({ port, stateDir });
  assert.equal(supervisors.length, 1);
  assert.equal(supervisors[0].live, true);
  assert.equal(supervisors[0].record.state, "ready");
  assert.deepEqual(supervisors[0].record.owners.map((o) => o.pid).sort(), [first.pid, second.pid].sort());

  const left = await release({ port, stateDir, ownerPid: first.pid });
  assert.equal(left.status, "released");
  assert.deepEqual(
    left.owners.map((o) => o.pid),
    [second.pid],
  );
  assert.ok(await answers(port), "the server stays while a session holds a lease");
  await release({ port, stateDir, ownerPid: second.pid });
  await gone("after the last release", started.pid, port);
});

test("the end of the owning session tears the server down, without any release", async () => {
  const stateDir = setUp();
  const port = await freePort();
  const s = owner();
  const started = await up({ port, stateDir, ownerPid: s.pid, command: serve(port), grace: "2s" });
  s.end();
  await gone("after the session was killed", started.pid, port);
});

test("a server that already answers is reported external and never touched", async () => {
  const stateDir = setUp();
  const port = await freePort();
  const server = http.createServer((_, res) => res.end("{}"));
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  try {
    const external = await up({ port, stateDir, health: "/", ownerPid: owner().pid, command: serve(port) });
    assert.equal(external.status, "external");
    assert.equal(external.pid, null);
    assert.equal(external.supervisor_pid, null);
    assert.deepEqual(external.owners, []);
    assert.deepEqual((await status({ stateDir })).supervisors, []);
  } finally {
    server.close();
  }
});

test("a server that exits before it is ready rejects with its status and log tail", async () => {
  const stateDir = setUp();
  const port = await freePort();
  const failure = await up({
    port,
    stateDir,
    ownerPid: owner().pid,
    readyTimeout: "20s",
    command: [fixture, "tree", "--exit", "3"],
  }).then(
    () => assert.fail("up should have failed"),
    (e) => e,
  );
  assert.ok(failure instanceof OcwrapError, String(failure));
  assert.equal(failure.name, "OcwrapError");
  assert.equal(failure.exitCode, 1);
  assert.equal(failure.exit_status, 3);
  assert.match(failure.message, /exited before it was ready/);
  assert.match(failure.log_tail, /^server \d+ /m, "the fixture's first line is in the log tail");
  assert.deepEqual((await status({ stateDir })).supervisors, [], "nothing is left running");
});

test("a usage error rejects with exit code 2 and ocwrap's message", async () => {
  const failure = await up({ stateDir: setUp(), command: [fixture, "tree"] }).then(
    () => assert.fail("up without --port or --name should fail"),
    (e) => e,
  );
  assert.ok(failure instanceof OcwrapError);
  assert.equal(failure.exitCode, 2);
  assert.match(failure.message, /--port or --name/);
  await assert.rejects(up({ port: 1 }), TypeError);
});

test("stop ends an unowned server and says not_running the second time", async () => {
  const stateDir = setUp();
  const port = await freePort();
  const started = await up({ port, stateDir, owner: "none", command: serve(port) });
  const stopped = await stop({ port, stateDir, wait: true });
  assert.equal(stopped.status, "stopped");
  assert.equal(stopped.stopped[0].server_pid, started.pid);
  await gone("after stop --wait", started.pid, port);
  const again = await stop({ port, stateDir });
  assert.equal(again.status, "not_running");
  await assert.rejects(release({ port, stateDir }), OcwrapError, "release of what does not run");
});

test("idleTimeout tears an unused server down", async () => {
  const stateDir = setUp();
  const port = await freePort();
  const began = Date.now();
  const started = await up({ port, stateDir, owner: "none", idleTimeout: 1000, command: serve(port) });
  await gone("after --idle-timeout 1000ms", started.pid, port);
  assert.ok(Date.now() - began >= 1000, "not before the idle timeout");
});

test("OCWRAP_BINARY wins, and without a binary the error names the platform", () => {
  const pkg = dirname(createRequire(import.meta.url).resolve("ocwrap/package.json"));
  // The main package alone, as npm leaves it with --omit=optional.
  const alone = join(realpathSync(mkdtempSync(join(tmpdir(), "ocwrap-alone-"))), "node_modules", "ocwrap");
  cpSync(pkg, alone, { recursive: true });
  const run = (env) =>
    execFileSync(
      process.execPath,
      ["-e", "try { console.log(require(process.argv[1]).binaryPath()) } catch (e) { console.log(`${e.name}: ${e.message}`) }", alone],
      { encoding: "utf8", env: { ...process.env, OCWRAP_BINARY: "", ...env } },
    ).trim();
  assert.match(run({}), /^OcwrapError: no ocwrap binary for linux-x64: @ocwrap\/linux-x64 is not installed/);
  assert.equal(run({ OCWRAP_BINARY: binaryPath() }), binaryPath());
  assert.match(run({ OCWRAP_BINARY: "/nonexistent/ocwrap" }), /^OcwrapError: OCWRAP_BINARY=\/nonexistent\/ocwrap is not an executable file/);
});

