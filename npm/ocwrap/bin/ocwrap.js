#!/usr/bin/env node
// `npx ocwrap …` and `ocwrap` from node_modules/.bin: runs the platform package's
// binary (binaryPath(), or OCWRAP_BINARY) with these arguments and the same stdio,
// and exits as it exits: with its code, or by the signal that ended it. Node cannot
// exec, so this process stays as ocwrap's parent for as long as ocwrap runs, and
// no longer (docs/DESIGN.md, "npm packages": what that means for `--owner parent`).
//
// npx runs this below `npm exec` and a shell, and neither passes SIGTERM on: a
// killed `npx` leaves this process behind. So it watches its parent, and under npx
// npm too (every 200 ms, the interval of ocwrap's own --watch-method poll; Node
// has no pidfds), and once either is gone it asks ocwrap to stop with one SIGTERM
// unless ocwrap has already been asked, then exits as ocwrap exits.
//
// Signals: SIGTERM, SIGUSR1 and SIGUSR2 are sent at one process, so they are passed
// on to ocwrap. SIGINT, SIGQUIT, SIGHUP and SIGWINCH come from a terminal to its
// whole foreground process group, ocwrap included (it stays in this process's
// group), so while one of the standard streams is a terminal they are not passed on
// again: a second SIGINT would make ocwrap skip the grace period. With no terminal
// they can only have been sent at this process, and are passed on. On Windows a
// console's Ctrl-C reaches every process attached to it; this one only waits.
"use strict";

const { execFileSync, spawn } = require("node:child_process");
const fs = require("node:fs");
const tty = require("node:tty");
const os = require("node:os");

const { binaryPath } = require("../index.js");

let binary;
try {
  binary = binaryPath();
} catch (e) {
  process.stderr.write(`ocwrap: ${e.message}\n`);
  process.exit(125);
}


const terminal = [0, 1, 2].some((fd) => tty.isatty(fd));
const relayed =
  process.platform === "win32"
    ? []
    : ["SIGTERM", "SIGUSR1", "SIGUSR2", ...(terminal ? [] : ["SIGINT", "SIGQUIT", "SIGHUP", "SIGWINCH"])];
const waited = process.platform === "win32" ? ["SIGINT", "SIGBREAK", "SIGHUP"] : ["SIGINT", "SIGQUIT", "SIGHUP"];
const terminating = new Set(["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGBREAK"]);
let asked = false; // whether ocwrap has been asked to stop (by us, or by the terminal)
const pass = (signal) => {
  try {
    child.kill(signal);
  } catch {
    // ocwrap has already exited; its exit ends this process.
  }
};
const handlers = new Map();
for (const signal of new Set([...relayed, ...waited])) {
  const handler = () => {
    if (terminating.has(signal)) asked = true;
    if (relayed.includes(signal)) pass(signal);
  };
  handlers.set(signal, handler);
  process.on(signal, handler);
}

const gone = (pid) => {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return e.code === "ESRCH";
  }
};
/** A process's parent, from /proc (Linux), else from ps (once, at start), else null. */
const parentOf = (pid, { ps = false } = {}) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    if (!ps) return null;
  }
  try {
    return Number(execFileSync("ps", ["-o", "ppid=", "-p", String(pid)], { encoding: "utf8", timeout: 2000 }).trim()) || null;
  } catch {
    return null;
  }
};
const parent = process.ppid;
// Under npx the parent is npm's `sh -c`, and an `npm exec` killed with SIGKILL
// leaves that shell waiting on this process: npm (the grandparent) is watched too.
const grandparent = process.env.npm_command === "exec" && process.platform !== "win32" ? parentOf(parent, { ps: true }) : null;
const procfs = fs.existsSync(`/proc/${process.pid}/stat`);
// Who ran this launcher: under npx, whoever ran npx. ocwrap takes it for "the
// caller's parent" in the commands that return while the server runs (`up`,
// `hook`, `release`), since this process is gone as soon as they return.
const caller = grandparent !== null ? parentOf(grandparent, { ps: true }) : parent;
const env = { ...process.env };
if (caller) env.OCWRAP_LAUNCHER = `${process.pid}:${caller}`;
else delete env.OCWRAP_LAUNCHER;
const child = spawn(binary, process.argv.slice(2), { stdio: "inherit", env });
const parentGone = () => {
  if (process.ppid !== parent || gone(parent)) return true; // reparented (Unix), or gone (Windows)
  if (grandparent === null) return false;
  // With /proc: the shell was reparented. Without: npm's PID is gone.
  return procfs ? parentOf(parent) !== grandparent : gone(grandparent);
};
const watch = setInterval(() => {
  if (!parentGone()) return;
  clearInterval(watch);
  if (!asked) {
    asked = true;
    pass("SIGTERM");
  }
}, 200);
watch.unref();

child.on("error", (e) => {
  process.stderr.write(`ocwrap: cannot start ${binary}: ${e.code ?? e.message}\n`);
  process.exit(125);
});

child.on("exit", (code, signal) => {
  if (signal) {
    // Die by the same signal, as a shell reports a child killed by it.
    for (const [name, handler] of handlers) process.off(name, handler);
    try {
      process.kill(process.pid, signal);
    } catch {
      // A signal this platform cannot send itself: fall through to the exit code.
    }
    process.exit(128 + (os.constants.signals[signal] ?? 0));
  }
  process.exit(code ?? 125);
});
