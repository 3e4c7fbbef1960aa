// The installed ocwrap package against the test fixture (OCWRAP_FIXTURE, a server
// that listens on a port and says what it does): up started / attached /
// external / failed with a log tail, release, status, stop, idle-timeout, and how
// the binary is found; options refused before anything runs (shown with a
// stand-in binary that records its runs, and by a shared server's leases that a
// refused release leaves alone), values that stay values, and answers that are
// not one JSON object. Runs in a project that installed the packed tarballs, so
// `ocwrap` resolves as it does for a plugin.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, realpathSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { inspect } from "node:util";

import { OcwrapError, binaryPath, release, status, stop, up } from "ocwrap";

import { answers, fakeBinary, freePort, gone, session, stateDir, withBinary } from "./helpers.mjs";

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
  assert.equal(failure.kind, "server_exited");
  assert.equal(failure.exit_status, 3);
  assert.match(failure.message, /exited before it was ready/);
  assert.match(failure.log_tail, /^server \d+ /m, "the fixture's first line is in the log tail");
  assert.deepEqual((await status({ stateDir })).supervisors, [], "nothing is left running");
});

test("a usage error of the binary rejects with exit code 2 and ocwrap's message", async () => {
  // OCWRAP_GRACE is the binary's own: only it can tell this value is wrong.
  const env = { ...process.env, OCWRAP_GRACE: "bogus" };
  const failure = await up({ port: await freePort(), stateDir: setUp(), env, command: [fixture, "tree"] }).then(
    () => assert.fail("up with OCWRAP_GRACE=bogus should fail"),
    (e) => e,
  );
  assert.ok(failure instanceof OcwrapError);
  assert.equal(failure.kind, "usage");
  assert.equal(failure.exitCode, 2);
  assert.match(failure.message, /^invalid value 'bogus' for '--grace <DUR>'/);
});

test("failures carry the binary's kind; owner: \"session\" outside a session is the caller; cwd", async () => {
  const stateDir = setUp();
  const port = await freePort();
  await assert.rejects(up({ port, stateDir, ownerAncestor: "no-such-ancestor", command: serve(port) }), (e) => {
    assert.ok(e instanceof OcwrapError, String(e));
    assert.equal(e.kind, "no_owner_found", e.message);
    assert.equal(e.exitCode, 125);
    return true;
  });
  const cwd = realpathSync(mkdtempSync(join(tmpdir(), "ocwrap-cwd-")));
  const started = await up({ port, stateDir, owner: "session", cwd, command: serve(port) });
  assert.deepEqual(started.leases.map((l) => [l.pid, l.found_by]), [[process.pid, "parent"]]);
  assert.equal((await status({ port, stateDir })).supervisors[0].record.cwd, cwd);
  const released = await release({ port, stateDir, owner: "session" });
  assert.equal(released.released, process.pid);
  assert.equal(released.found_by, "parent");
  await gone("after the session's release", started.pid, port);
  await assert.rejects(release({ port, stateDir, owner: "session" }), (e) => e.kind === "not_running");
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
  await assert.rejects(release({ port, stateDir, all: true }), OcwrapError, "release of what does not run");
});

test("idleTimeout tears an unused server down", async () => {
  const stateDir = setUp();
  const port = await freePort();
  const began = Date.now();
  const started = await up({ port, stateDir, owner: "none", idleTimeout: 1000, command: serve(port) });
  await gone("after --idle-timeout 1000ms", started.pid, port);
  assert.ok(Date.now() - began >= 1000, "not before the idle timeout");
});

test("a broker on a Unix socket: up waits for its socket, a second session attaches, the sessions' end tears it down", async () => {
  const stateDir = setUp();
  const socket = join(dirname(stateDir), `broker-${process.pid}.sock`);
  const [first, second] = [owner(), owner()];
  const command = [fixture, "broker", socket, "--after", "200"];
  const started = await up({ socket, stateDir, ownerPid: first.pid, command });
  assert.equal(started.status, "started");
  assert.equal(started.socket, socket);
  assert.equal(started.ready, "connect");
  assert.equal(started.url, null);
  assert.match(started.name, /^sock-broker-\d+\.sock-[0-9a-f]{8}$/);
  const attached = await up({ socket, stateDir, ownerPid: second.pid, command });
  assert.equal(attached.status, "attached");
  assert.equal(attached.pid, started.pid);
  const { supervisors } = await status({ socket, stateDir });
  assert.equal(supervisors[0].record.socket, socket);
  first.end();
  second.end();
  await gone("after both sessions ended", started.pid);
});

test("ready: \"fd:3\" waits for the server's newline", async () => {
  const stateDir = setUp();
  const started = await up({
    name: "fd",
    stateDir,
    owner: "none",
    ready: "fd:3",
    command: [fixture, "broker", "-", "--after", "100", "--fd", "3"],
  });
  assert.equal(started.ready, "fd:3");
  await stop({ name: "fd", stateDir, wait: true });
  await gone("after stop", started.pid);
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


// --- options are checked before anything runs -------------------------------------

/** Rejects like a refused option: kind "invalid_option", the option named in both. */
function refused(option, message) {
  return (e) => {
    assert.ok(e instanceof OcwrapError, `an OcwrapError, not ${e}`);
    assert.equal(e.kind, "invalid_option", e.message);
    assert.equal(e.option, option, e.message);
    assert.match(e.message, message);
    return true;
  };
}

// What the stand-in binary answers when a call does run: an answer that every
// call would take for a success, so a bad option that got through would resolve.
const SUCCESS = JSON.stringify({
  status: "released",
  name: "port-4096",
  released: null,
  owners: [],
  supervisors: [],
  stopped: [],
  not_running: [],
  errors: [],
});

const BAD = [
  // [call, options, the option named, what the message says]
  [release, { port: 4096, ownerPid: undefined }, "ownerPid", /options\.ownerPid is undefined: give the PID .* or all: true/],
  [release, { port: 4096, ownerPid: null }, "ownerPid", /options\.ownerPid is null/],
  [release, { port: 4096, ownerPid: -5 }, "ownerPid", /options\.ownerPid must be a process ID, .* not -5$/],
  [release, { port: 4096, ownerPid: 0 }, "ownerPid", /not 0$/],
  [release, { port: 4096, ownerPid: 1.5 }, "ownerPid", /not 1\.5$/],
  [release, { port: 4096, ownerPid: "1234" }, "ownerPid", /not "1234"$/],
  [release, { port: 4096, ownerPid: 2 ** 31 }, "ownerPid", /not 2147483648$/],
  [release, { port: 4096, ownerPid: Number.NaN }, "ownerPid", /not NaN$/],
  [release, { port: 4096, ownerPID: 1234 }, "ownerPID", /unknown option ownerPID \(did you mean ownerPid\?\)/],
  [release, { port: 4096 }, "ownerPid", /options\.ownerPid, options\.owner or options\.ownerAncestor is required: .* \(or all: true to drop every lease\)/],
  [release, { port: 4096, owner: "none" }, "owner", /options\.owner must be "session" or "parent", not "none"/],
  [release, { port: 4096, owner: undefined }, "owner", /options\.owner is undefined: give owner: "session"/],
  [release, { port: 4096, owner: "session", ownerPid: 1234 }, "owner", /options\.ownerPid and options\.owner contradict/],
  [release, { port: 4096, ownerAncestor: "a/b" }, "ownerAncestor", /must be a process name/],
  [release, { port: 4096, all: false }, "all", /options\.all must be true, or left out, not false/],
  [release, { port: 4096, ownerPid: 1234, all: true }, "all", /options\.ownerPid and options\.all contradict/],
  [release, {}, "port", /options\.port, options\.socket or options\.name is required/],
  [release, undefined, "port", /options\.port, options\.socket or options\.name is required/],
  [release, null, null, /the options must be an object, not null/],
  [release, 4096, null, /the options must be an object, not 4096/],
  [release, { port: 0, ownerPid: 1234 }, "port", /options\.port must be a TCP port, .* not 0$/],
  [release, { port: 65536, ownerPid: 1234 }, "port", /not 65536$/],
  [release, { port: "4096", ownerPid: 1234 }, "port", /not "4096"$/],
  [release, { port: 4096, name: "x", ownerPid: 1234 }, "name", /options\.name and options\.port both say which supervisor/],
  [release, { name: "", ownerPid: 1234 }, "name", /options\.name must be a name of 1 to 64 letters/],
  [release, { name: "a/b", ownerPid: 1234 }, "name", /not "a\/b"$/],
  [release, { name: "..", ownerPid: 1234 }, "name", /not "\.\."$/],
  [release, { name: "x".repeat(65), ownerPid: 1234 }, "name", /options\.name must be/],
  [release, { port: 4096, ownerPid: 1234, stateDir: "" }, "stateDir", /options\.stateDir must be a path/],
  [release, { port: 4096, ownerPid: 1234, stateDir: "a\0b" }, "stateDir", /not "a\\u0000b"$/],
  [release, { port: 4096, ownerPid: 1234, env: { PATH: 5 } }, "env.PATH", /options\.env\.PATH must be a string/],
  [up, undefined, "command", /options\.command is required/],
  [up, { port: 4096 }, "command", /options\.command is required/],
  [up, { port: 4096, command: [] }, "command", /options\.command must be a non-empty array of strings: .* not \[\]$/],
  [up, { port: 4096, command: "opencode serve" }, "command", /options\.command must be a non-empty array/],
  [up, { port: 4096, command: ["x", 5] }, "command[1]", /options\.command\[1\] must be a string .* not 5$/],
  [up, { port: 4096, command: [""] }, "command[0]", /options\.command\[0\] must be the server's program/],
  [up, { command: ["x"] }, "port", /options\.port, options\.socket or options\.name is required/],
  [up, { port: 4096, command: ["x"], ownerPid: undefined }, "ownerPid", /options\.ownerPid is undefined/],
  [up, { port: 4096, command: ["x"], ownerPid: -5 }, "ownerPid", /options\.ownerPid must be a process ID, .*, or an array of them, not -5$/],
  [up, { port: 4096, command: ["x"], ownerPid: [1234, -5] }, "ownerPid[1]", /options\.ownerPid\[1\] must be a process ID, .* not -5$/],
  [up, { port: 4096, command: ["x"], ownerPid: [] }, "ownerPid", /options\.ownerPid must not be empty/],
  [up, { port: 4096, command: ["x"], ownerPids: [1234] }, "ownerPids", /unknown option ownerPids \(up takes .*ownerPid/],
  [up, { port: 4096, command: ["x"], grace: "5 s" }, "grace", /options\.grace must be a duration: .* not "5 s"$/],
  [up, { port: 4096, command: ["x"], grace: "-5s" }, "grace", /not "-5s"$/],
  [up, { port: 4096, command: ["x"], grace: "5d" }, "grace", /not "5d"$/],
  [up, { port: 4096, command: ["x"], grace: -1 }, "grace", /not -1$/],
  [up, { port: 4096, command: ["x"], grace: 1.5 }, "grace", /not 1\.5$/],
  [up, { port: 4096, command: ["x"], linger: "9000h" }, "linger", /options\.linger must be at most 365 days/],
  [up, { port: 4096, command: ["x"], readyTimeout: Infinity }, "readyTimeout", /not Infinity$/],
  [up, { port: 4096, command: ["x"], idleTimeout: 0 }, "idleTimeout", /options\.idleTimeout must be longer than 0/],
  [up, { name: "x", command: ["x"], idleTimeout: "5m" }, "idleTimeout", /options\.idleTimeout needs options\.port/],
  [up, { name: "x", command: ["x"], health: "/health" }, "health", /options\.health needs options\.port/],
  [up, { socket: "/run/b.sock", command: ["x"], health: "/health" }, "health", /options\.health needs options\.port/],
  [up, { port: 4096, socket: "/run/b.sock", command: ["x"] }, "socket", /options\.port and options\.socket both say where/],
  [up, { socket: "", command: ["x"] }, "socket", /must be the server's local socket/],
  [up, { name: "x", ready: "fd:2", command: ["x"] }, "ready", /"fd:N" with N from 3 to 1023/],
  [up, { name: "x", ready: "soon", command: ["x"] }, "ready", /must be "connect", "exec", "notify"/],
  [stop, { socket: "/run/b.sock", all: true }, "all", /leave out options\.socket/],
  [up, { port: 4096, command: ["x"], health: "health" }, "health", /options\.health must be an absolute URL path/],
  [up, { port: 4096, command: ["x"], host: "10.0.0.1" }, "host", /options\.host must be a loopback address/],
  [up, { port: 4096, command: ["x"], host: "--verbose" }, "host", /not "--verbose"$/],
  [up, { port: 4096, command: ["x"], owner: "everyone" }, "owner", /options\.owner must be "session" or "parent" or "none"/],
  [up, { port: 4096, command: ["x"], owner: "none", ownerPid: 1234 }, "owner", /"none" cannot be combined with options\.ownerPid/],
  [up, { port: 4096, command: ["x"], ownerAncestor: "a/b" }, "ownerAncestor", /options\.ownerAncestor must be a process name/],
  [up, { port: 4096, command: ["x"], session: "yes" }, "session", /options\.session must be true or false, not "yes"$/],
  [up, { port: 4096, command: ["x"], stdin: "tty" }, "stdin", /options\.stdin must be "inherit" or "null"/],
  [up, { port: 4096, command: ["x"], watchMethod: "inotify" }, "watchMethod", /options\.watchMethod must be/],
  [up, { port: 4096, command: ["x"], contain: "none" }, "contain", /options\.contain must be/],
  [up, { port: 4096, command: ["x"], log: 5 }, "log", /options\.log must be a path/],
  [status, { port: -1 }, "port", /options\.port must be a TCP port/],
  [status, { port: 4096, name: "x" }, "name", /both say which supervisor/],
  [status, { stateDir: undefined }, "stateDir", /options\.stateDir is undefined: leave the option out for its default/],
  [status, { all: true }, "all", /unknown option all \(status takes/],
  [stop, {}, "port", /options\.port, options\.socket or options\.name is required: which supervisor to stop \(or all: true/],
  [stop, undefined, "port", /options\.port, options\.socket or options\.name is required/],
  [stop, { port: 4096, all: true }, "all", /options\.all: true stops every supervisor: leave out options\.port/],
  [stop, { all: "yes" }, "all", /options\.all must be true or false/],
  [stop, { port: 4096, wait: 1 }, "wait", /options\.wait must be true or false, not 1$/],
];

test("bad options are refused, naming the option, and the binary never runs", async () => {
  const fake = fakeBinary({ answer: SUCCESS });
  await withBinary(fake.path, async () => {
    for (const [fn, options, option, message] of BAD) {
      const what = `${fn.name}(${inspect(options)})`;
      await assert.rejects(fn(options), refused(option, message), what);
      assert.deepEqual(fake.runs(), [], `${what} ran the binary`);
    }
  });
});

test("options reach the binary as --flag=value, the command after --, so values stay values", async () => {
  const fake = fakeBinary({ answer: SUCCESS });
  await withBinary(fake.path, async () => {
    await release({ port: 4096, ownerPid: 1234, stateDir: "-x" });
    await release({ name: "-5", all: true });
    await status({ name: "--all" });
    await status();
    await stop({ all: true, wait: true });
    await up({
      name: "-5",
      port: 4096,
      ownerPid: [11, 12],
      ownerAncestor: "--help",
      grace: 2000,
      idleTimeout: "30m",
      session: true,
      host: "::1",
      command: ["--version", "-5", ""],
    });
  });
  assert.deepEqual(fake.runs(), [
    ["release", "--json", "--port=4096", "--state-dir=-x", "--owner-pid=1234"],
    ["release", "--json", "--name=-5"],
    ["status", "--json", "--name=--all"],
    ["status", "--json"],
    ["stop", "--json", "--all", "--wait"],
    [
      "up",
      "--json",
      "--owner-pid=11",
      "--owner-pid=12",
      "--owner-ancestor=--help",
      "--grace=2000ms",
      "--idle-timeout=30m",
      "--session",
      "--name=-5",
      "--port=4096",
      "--host=::1",
      "--",
      "--version",
      "-5",
      "",
    ],
  ]);
});

test("values that look like flags reach the real binary as values", async () => {
  const stateDir = setUp();
  // Not supervised: so the binary says so, naming them; as flags they would be usage errors (exit 2).
  const notRunning = (name) => (e) => {
    assert.ok(e instanceof OcwrapError, String(e));
    assert.equal(e.message, `${name}: not running`);
    assert.equal(e.exitCode, 1, e.message);
    assert.equal(e.kind, "not_running");
    return true;
  };
  await assert.rejects(status({ stateDir, name: "--all" }), notRunning("--all"));
  await assert.rejects(release({ stateDir, name: "-5", ownerPid: 1234 }), notRunning("-5"));
});

test("a refused release leaves a shared server's leases alone; all: true drops them", async () => {
  const stateDir = setUp();
  const port = await freePort();
  const [first, second] = [owner(), owner()];
  const options = { port, stateDir, command: serve(port) };
  const started = await up({ ...options, ownerPid: first.pid });
  await up({ ...options, ownerPid: second.pid });
  // The owners holding a lease, or what status said instead (a server torn down is "not running").
  const leases = () =>
    status({ port, stateDir }).then(
      (s) => s.supervisors[0].record.owners.map((o) => o.pid).sort(),
      (e) => e.message,
    );
  const both = [first.pid, second.pid].sort();
  for (const bad of [{ ownerPid: undefined }, { ownerPid: null }, { ownerPID: first.pid }, { ownerPid: -5 }, {}]) {
    const what = `release(${inspect({ port, ...bad })})`;
    const outcome = release({ port, stateDir, ...bad }).then(
      (answer) => answer,
      (e) => e,
    );
    const refusal = await outcome;
    assert.deepEqual(await leases(), both, `${what} dropped a lease`);
    assert.ok(refusal instanceof OcwrapError && refusal.kind === "invalid_option", `${what}: ${inspect(refusal)}`);
  }
  assert.ok(await answers(port), "the server is still up");
  const all = await release({ port, stateDir, all: true });
  assert.equal(all.status, "released");
  assert.equal(all.released, null);
  assert.deepEqual(all.owners, []);
  await gone("after release with all: true", started.pid, port);
});

test("an answer that is not one JSON object is an error, not a result", async () => {
  const cases = [
    ["42", /^ocwrap (release|status) answered 42 \(a number\); expected one JSON object$/],
    ["[]", /answered \[\] \(an array\)/],
    ['"x"', /answered "x" \(a string\)/],
    ["null", /answered null \(null\)/],
    ["true", /answered true \(a boolean\)/],
    ["garbage", /printed "garbage" on stdout, which is not JSON/],
    ['{"status":"released"}{"status":"released"}', /which is not JSON/],
    ["", /printed nothing on stdout/],
    ["\n  \n", /printed nothing on stdout/],
  ];
  for (const [answer, message] of cases) {
    const fake = fakeBinary({ answer });
    await withBinary(fake.path, async () => {
      for (const run of [() => release({ port: 4096, ownerPid: 1234 }), () => status()]) {
        await assert.rejects(
          run(),
          (e) => {
            assert.ok(e instanceof OcwrapError, String(e));
            assert.equal(e.kind, "invalid_answer", `${JSON.stringify(answer)}: ${e.message}`);
            assert.equal(e.exitCode, 0);
            assert.match(e.message, message);
            return true;
          },
          `an answer of ${JSON.stringify(answer)}`,
        );
      }
    });
    assert.equal(fake.runs().length, 2, "both calls ran the stand-in");
  }
});

test("a usage error's whole message is kept, with the lines that go on from it", async () => {
  const stderr =
    "error: the following required arguments were not provided:\n  <--name <N>|--port <P>>\n\n" +
    "Usage: ocwrap release --json <--name <N>|--port <P>>\n\nFor more information, try '--help'.\n";
  const fake = fakeBinary({ stderr, code: 2 });
  await withBinary(fake.path, () =>
    assert.rejects(release({ port: 4096, ownerPid: 1234 }), (e) => {
      assert.ok(e instanceof OcwrapError, String(e));
      assert.equal(e.message, "the following required arguments were not provided: <--name <N>|--port <P>>");
      assert.equal(e.exitCode, 2);
      assert.equal(e.kind, "failed");
      return true;
    }),
  );
});
