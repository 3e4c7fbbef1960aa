// The ocwrap package: a JavaScript API over the ocwrap binary, for plugins that
// start a local server (opencode serve) and want it gone when their sessions are.
// Each call runs the binary once with --json and resolves with its parsed answer,
// or rejects with an OcwrapError; nothing is kept between calls, so every
// guarantee is the binary's own (README.md of the project). The binary comes from
// OCWRAP_BINARY, else from the platform package (an optional dependency that npm
// installs only where it runs), else binaryPath() says which platform lacks one.
"use strict";

const { execFile } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

/** Platforms with a binary package, as `${process.platform}-${process.arch}`. */
const PLATFORM_PACKAGES = { "linux-x64": "@ocwrap/linux-x64" };

/** The most output one call may print (a status with many records stays far below). */
const MAX_OUTPUT = 16 * 1024 * 1024;

class OcwrapError extends Error {
  constructor(message, details = {}) {
    super(message);
    this.name = "OcwrapError";
    /** ocwrap's own exit code (1: failed, 2: usage, 125: ocwrap itself), or null. */
    this.exitCode = details.exitCode ?? null;
    /** The server's exit status when it exited before it was ready (`up`), or null. */
    this.exit_status = details.exit_status ?? null;
    /** The last lines of the server's log (`up`), or null. */
    this.log_tail = details.log_tail ?? null;
    /** What ocwrap said on stderr. */
    this.stderr = details.stderr ?? "";
    /** The parsed JSON answer, when there was one. */
    this.result = details.result ?? null;
  }
}

function isExecutableFile(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The ocwrap binary these calls run. Throws an OcwrapError when there is none. */
function binaryPath() {
  const fromEnv = process.env.OCWRAP_BINARY;
  if (fromEnv) {
    if (!isExecutableFile(fromEnv)) {
      throw new OcwrapError(`OCWRAP_BINARY=${fromEnv} is not an executable file`);
    }
    return fromEnv;
  }
  const platform = `${process.platform}-${process.arch}`;
  const pkg = PLATFORM_PACKAGES[platform];
  const instead =
    "set OCWRAP_BINARY to an ocwrap binary (for example one built with cargo install, as the project's README shows)";
  if (!pkg) {
    throw new OcwrapError(
      `ocwrap has no binary package for ${platform} (only for ${Object.keys(PLATFORM_PACKAGES).join(", ")}): ${instead}`,
    );
  }
  let dir;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new OcwrapError(
      `no ocwrap binary for ${platform}: ${pkg} is not installed (an optional dependency of ocwrap: was it installed with --omit=optional or --no-optional?); reinstall ocwrap, or ${instead}`,
    );
  }
  const binary = path.join(dir, "bin", "ocwrap");
  if (!isExecutableFile(binary)) {
    throw new OcwrapError(`no ocwrap binary for ${platform}: ${binary} is missing or not executable`);
  }
  return binary;
}

/** A DUR: a string as ocwrap reads it ("250ms", "5s", "2m"), or milliseconds. */
function duration(value) {
  return typeof value === "number" ? `${value}ms` : String(value);
}

/** The options every command takes, as arguments. */
function stateArgs(options) {
  return options.stateDir !== undefined ? ["--state-dir", String(options.stateDir)] : [];
}

/** `--name N` or `--port P`, which name the supervisor a command is about. */
function selectorArgs(options) {
  if (options.name !== undefined) return ["--name", String(options.name)];
  if (options.port !== undefined) return ["--port", String(options.port)];
  return [];
}

/** The options of `up` (and `run`), in the order `ocwrap up --help` lists them. */
function upArgs(options) {
  const args = ["up", "--json"];
  const add = (flag, value, form = String) => {
    if (value !== undefined && value !== null) args.push(flag, form(value));
  };
  add("--ready-timeout", options.readyTimeout, duration);
  for (const pid of [].concat(options.ownerPid ?? [])) add("--owner-pid", pid);
  add("--owner-ancestor", options.ownerAncestor);
  add("--owner", options.owner);
  add("--grace", options.grace, duration);
  add("--linger", options.linger, duration);
  add("--idle-timeout", options.idleTimeout, duration);
  add("--log", options.log);
  if (options.session) args.push("--session");
  add("--stdin", options.stdin);
  add("--watch-method", options.watchMethod);
  add("--contain", options.contain);
  add("--name", options.name);
  add("--port", options.port);
  add("--host", options.host);
  add("--health", options.health);
  args.push(...stateArgs(options));
  if (options.verbose) args.push("--verbose");
  return args;
}

/**
 * Runs the binary with `args` and settles with its JSON answer. `accept(result,
 * exitCode)` says whether an answer is a success (by default: exit 0).
 */
function call(args, options, accept = (_result, exitCode) => exitCode === 0) {
  return new Promise((resolve, reject) => {
    let binary;
    try {
      binary = binaryPath();
    } catch (e) {
      reject(e);
      return;
    }
    const env = options.env ?? process.env;
    execFile(binary, args, { encoding: "utf8", env, maxBuffer: MAX_OUTPUT }, (error, stdout, stderr) => {
      const exitCode = error ? (typeof error.code === "number" ? error.code : null) : 0;
      let result = null;
      try {
        result = JSON.parse(stdout);
      } catch {
        // No JSON: a usage error (exit 2), a crash, or the binary could not run.
      }
      if (result !== null && accept(result, exitCode)) {
        resolve(result);
        return;
      }
      const said = saidOnStderr(stderr);
      const message =
        result?.error ?? said ?? error?.message ?? `ocwrap ${args[0]} exited ${exitCode}`;
      reject(
        new OcwrapError(message, {
          exitCode,
          exit_status: result?.exit_status,
          log_tail: result?.log_tail,
          stderr,
          result,
        }),
      );
    });
  });
}

/**
 * The gist of what ocwrap said on stderr: clap's `error: …` line for a usage
 * error, else ocwrap's last `ocwrap: …` line, else its first line.
 */
function saidOnStderr(stderr) {
  const lines = stderr.split("\n").filter((line) => line.trim() !== "");
  const usage = lines.find((line) => line.startsWith("error: "));
  const own = lines.filter((line) => line.startsWith("ocwrap: ")).pop();
  return usage?.slice("error: ".length) ?? own?.slice("ocwrap: ".length) ?? lines[0];
}

/** Starts the server or attaches to the one that runs, once it is ready. */
function up(options) {
  if (!Array.isArray(options?.command) || options.command.length === 0) {
    return Promise.reject(new TypeError("up: options.command must be a non-empty array (the server's argv)"));
  }
  return call([...upArgs(options), "--", ...options.command.map(String)], options);
}

/** Drops one owner's lease (every lease without ownerPid). Returns at once. */
function release(options = {}) {
  const args = ["release", "--json", ...selectorArgs(options), ...stateArgs(options)];
  if (options.ownerPid !== undefined) args.push("--owner-pid", String(options.ownerPid));
  return call(args, options);
}

/** What ocwrap supervises now. */
function status(options = {}) {
  return call(["status", "--json", ...selectorArgs(options), ...stateArgs(options)], options);
}

/**
 * Tears down what ocwrap started (`all`: every supervisor of this user). Resolves
 * with `status: "not_running"` when there was nothing to stop; rejects when a
 * supervisor could not be reached.
 */
function stop(options = {}) {
  const args = ["stop", "--json", ...(options.all ? ["--all"] : selectorArgs(options)), ...stateArgs(options)];
  if (options.wait) args.push("--wait");
  return call(args, options, (result, exitCode) => {
    const clean = Array.isArray(result.errors) && result.errors.length === 0;
    return clean && (exitCode === 0 || (exitCode === 1 && result.status === "not_running"));
  });
}

exports.up = up;
exports.release = release;
exports.status = status;
exports.stop = stop;
exports.binaryPath = binaryPath;
exports.OcwrapError = OcwrapError;
