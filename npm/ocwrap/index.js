// The ocwrap package: a JavaScript API over the ocwrap binary, for plugins that
// start a local server (opencode serve) and want it gone when their sessions are.
// Each call checks its options, runs the binary once with --json and resolves with
// its parsed answer, or rejects with an OcwrapError; nothing is kept between calls,
// so every guarantee is the binary's own (README.md of the project). The binary
// comes from OCWRAP_BINARY, else from the platform package (an optional dependency
// that npm installs only where it runs), else binaryPath() says which platform
// lacks one.
//
// Options are checked before anything runs (docs/DESIGN.md, "npm packages"): an
// option that is present must hold a valid value (undefined and null are not
// values; leaving the option out is how a default is asked for), unknown options
// are refused, and release drops every lease only when told so with `all: true`.
// Every value reaches the binary as one `--flag=value` argument and the server's
// command comes after `--`, so no value can be read as a flag.
"use strict";

const { execFile } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const path = require("node:path");

/**
 * The platforms with a binary package (`@ocwrap/${platform}`), as
 * `${process.platform}-${process.arch}`, and what each package's binary must be, as
 * its first bytes say: the file format and its machine field (ELF e_machine,
 * Mach-O CPU type, PE machine).
 */
const PLATFORMS = {
  "linux-x64": { format: "ELF", machine: 62, cpu: "x86-64" },
  "linux-arm64": { format: "ELF", machine: 183, cpu: "arm64" },
  "darwin-arm64": { format: "Mach-O", machine: 0x0100000c, cpu: "arm64" },
  "darwin-x64": { format: "Mach-O", machine: 0x01000007, cpu: "x86-64" },
  "win32-x64": { format: "PE", machine: 0x8664, cpu: "x86-64" },
  "win32-arm64": { format: "PE", machine: 0xaa64, cpu: "arm64" },
};

/** The most output one call may print (a status with many records stays far below). */
const MAX_OUTPUT = 16 * 1024 * 1024;

/** The largest PID the binary takes (a PID is a positive 32-bit signed integer). */
const MAX_PID = 2 ** 31 - 1;

/** The longest duration the binary takes: 365 days, in seconds. */
const MAX_DURATION_S = 365 * 24 * 60 * 60;

class OcwrapError extends Error {
  constructor(message, details = {}) {
    super(message);
    this.name = "OcwrapError";
    /**
     * What went wrong, for a program to branch on, never the message: the
     * binary's own `kind` when it ran and failed ("no_owner_found", "not_ready",
     * "server_exited", "not_running", …; README, "Error kinds"), else
     * "invalid_option" (an option was refused and nothing ran), "no_binary" (there
     * is no binary to run), "invalid_answer" (the binary's output was not one JSON
     * object), or "failed" (it failed without saying a kind).
     */
    this.kind = details.kind ?? "failed";
    /** The refused option's name ("ownerPid", "env.PATH", …) for "invalid_option", else null. */
    this.option = details.option ?? null;
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

/** The CPU a machine field names, for messages ("x86-64", "arm64", or the number). */
function cpuName(format, machine) {
  const known = Object.values(PLATFORMS).find((k) => k.format === format && k.machine === machine);
  return known ? known.cpu : `machine ${machine}`;
}

/**
 * What a file is by its first bytes: `{ format, machines }` for an ELF, Mach-O
 * (thin, or universal with several) or PE file, `{ format: null }` for anything else.
 */
function binaryKind(head) {
  if (head.length >= 20 && head.readUInt32BE(0) === 0x7f454c46) {
    return { format: "ELF", machines: [head.readUInt16LE(18)] };
  }
  if (head.length >= 8 && head.readUInt32LE(0) === 0xfeedfacf) {
    return { format: "Mach-O", machines: [head.readUInt32LE(4)] };
  }
  if (head.length >= 8 && head.readUInt32BE(0) === 0xcafebabe) {
    const count = Math.min(head.readUInt32BE(4), Math.floor((head.length - 8) / 20));
    const machines = [];
    for (let i = 0; i < count; i++) machines.push(head.readUInt32BE(8 + 20 * i));
    return { format: "Mach-O", machines };
  }
  if (head.length >= 64 && head.readUInt16LE(0) === 0x5a4d) {
    const pe = head.readUInt32LE(0x3c);
    if (pe + 6 <= head.length && head.readUInt32BE(pe) === 0x50450000) {
      return { format: "PE", machines: [head.readUInt16LE(pe + 4)] };
    }
  }
  return { format: null, machines: [] };
}

/** The first bytes of a file, enough for binaryKind. */
function readHead(file) {
  const fd = fs.openSync(file, "r");
  try {
    const head = Buffer.alloc(4096);
    return head.subarray(0, fs.readSync(fd, head, 0, head.length, 0));
  } finally {
    fs.closeSync(fd);
  }
}

/** Why `file` cannot be run as ocwrap, or null when it can (as far as its mode says). */
function notExecutable(file) {
  let stat;
  try {
    stat = fs.statSync(file);
  } catch (e) {
    return e.code === "ENOENT" ? "is missing" : `cannot be read (${e.code ?? e.message})`;
  }
  if (!stat.isFile()) return "is not a file";
  if (process.platform === "win32") return null;
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return null;
  } catch {
    return `is not executable (mode ${(stat.mode & 0o777).toString(8).padStart(4, "0")}: unpacked without its modes?)`;
  }
}

/**
 * The ocwrap binary these calls run. Throws an OcwrapError of kind "no_binary",
 * naming the platform and what to do, when there is none: no package for this
 * platform, the package not installed, its binary missing, not executable, or not
 * a binary for this platform's format and CPU.
 */
function binaryPath() {
  const none = (message) => new OcwrapError(message, { kind: "no_binary" });
  const fromEnv = process.env.OCWRAP_BINARY;
  if (fromEnv) {
    const problem = notExecutable(fromEnv);
    if (problem) throw none(`OCWRAP_BINARY=${fromEnv} is not an executable file: it ${problem}; point it at an ocwrap binary`);
    return fromEnv;
  }
  const platform = `${process.platform}-${process.arch}`;
  const want = PLATFORMS[platform];
  const instead =
    "set OCWRAP_BINARY to an ocwrap binary (for example one built with cargo install, as the project's README shows)";
  if (!want) {
    throw none(
      `ocwrap has no binary package for ${platform} (only for ${Object.keys(PLATFORMS).join(", ")}): ${instead}`,
    );
  }
  const pkg = `@ocwrap/${platform}`;
  let dir;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw none(
      `no ocwrap binary for ${platform}: ${pkg} is not installed (an optional dependency of ocwrap: was it installed with --omit=optional or --no-optional, or on another platform?); reinstall ocwrap on this machine, or ${instead}`,
    );
  }
  const name = process.platform === "win32" ? "ocwrap.exe" : "ocwrap";
  const binary = path.join(dir, "bin", name);
  const problem = notExecutable(binary);
  if (problem) {
    throw none(`no ocwrap binary for ${platform}: ${binary} (of ${pkg}) ${problem}; reinstall ocwrap, or ${instead}`);
  }
  let kind;
  try {
    kind = binaryKind(readHead(binary));
  } catch (e) {
    throw none(`no ocwrap binary for ${platform}: cannot read ${binary} (${e.code ?? e.message}); reinstall ocwrap, or ${instead}`);
  }
  if (kind.format !== want.format || !kind.machines.includes(want.machine)) {
    const a = (format) => (format === "ELF" ? `an ${format}` : `a ${format}`);
    const is = kind.format
      ? `${a(kind.format)} binary for ${kind.machines.map((m) => cpuName(kind.format, m)).join(" and ") || "no CPU"}`
      : "not a binary at all";
    throw none(
      `no ocwrap binary for ${platform}: ${binary} (of ${pkg}) is ${is}, not ${a(want.format)} binary for ${want.cpu} (a package made for another machine?); reinstall ocwrap on this machine, or ${instead}`,
    );
  }
  return binary;
}

/** Spawn errors that mean the binary itself cannot be run. */
const CANNOT_RUN = new Set(["ENOENT", "EACCES", "ENOEXEC", "EPERM", "EISDIR", "ENOTDIR", "ELOOP", "ENAMETOOLONG"]);

// --- checking options --------------------------------------------------------------

/** A value as a message shows it: strings quoted and cut short, others by kind. */
function shown(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return value.length === 0 ? "[]" : `an array of ${value.length}`;
  switch (typeof value) {
    case "string": {
      const quoted = JSON.stringify(value);
      return quoted.length > 80 ? `${quoted.slice(0, 77)}…"` : quoted;
    }
    case "number":
    case "boolean":
    case "undefined":
      return String(value);
    case "bigint":
      return `${value}n (a bigint)`;
    case "object":
      return "an object";
    default:
      return `a ${typeof value}`;
  }
}

/** Refuses an option: an OcwrapError of kind "invalid_option" naming it. */
function refuse(call, option, message) {
  return new OcwrapError(`ocwrap ${call}: ${message}`, { kind: "invalid_option", option });
}

/**
 * What a check returns for a value it refuses: what the value must be, and where
 * inside the option the fault is (`[1]` of an array, `.PATH` of env) with the
 * value found there.
 */
class Wrong {
  constructor(phrase, where = "", value = undefined, hasValue = false) {
    this.phrase = phrase;
    this.where = where;
    this.value = value;
    this.hasValue = hasValue;
  }
}

const wrong = (phrase) => new Wrong(phrase);
const wrongAt = (where, value, phrase) => new Wrong(phrase, where, value, true);

/**
 * One option's check: `check(value)` returns the value as the binary takes it,
 * or a Wrong. `hint` is said when the option is present but undefined or null.
 */
function rule(check, hint = "leave the option out for its default") {
  return { check, hint };
}

function noNul(text) {
  return !text.includes("\0");
}

const port = rule((v) =>
  Number.isInteger(v) && v >= 1 && v <= 65535 ? String(v) : wrong("must be a TCP port, a whole number from 1 to 65535"),
);

const PID = "a process ID, a whole number from 1 to 2147483647";

function isPid(v) {
  return Number.isInteger(v) && v >= 1 && v <= MAX_PID;
}

/** The name of a record and lock, as the binary takes it. */
const NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

const name = rule((v) =>
  typeof v === "string" && NAME.test(v)
    ? v
    : wrong("must be a name of 1 to 64 letters, digits, '.', '_' or '-' that does not start with '.'"),
);

/** A file or directory path: a non-empty string with no NUL. */
const file = rule((v) =>
  typeof v === "string" && v !== "" && noNul(v) ? v : wrong("must be a path, a non-empty string with no NUL character"),
);

const flag = rule((v) => (typeof v === "boolean" ? v : wrong("must be true or false")));

function oneOf(...values) {
  const list = values.map((v) => JSON.stringify(v)).join(" or ");
  return rule((v) => (values.includes(v) ? v : wrong(`must be ${list}`)));
}

/** Seconds in a DUR of the binary's syntax, or null when `text` is not one. */
function durationSeconds(text) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!m) return null;
  const perUnit = { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] ?? "s"];
  return Number(m[1]) * perUnit;
}

const DURATION =
  'must be a duration: a string like "250ms", "5s", "2m", "1h" or "30" (seconds), or a whole number of milliseconds';

function duration({ positive = false } = {}) {
  return rule((v) => {
    let seconds;
    let text;
    if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) {
      seconds = v / 1000;
      text = `${v}ms`;
    } else if (typeof v === "string" && durationSeconds(v) !== null) {
      seconds = durationSeconds(v);
      text = v;
    } else {
      return wrong(DURATION);
    }
    if (seconds > MAX_DURATION_S) return wrong(`must be at most 365 days (${MAX_DURATION_S}s)`);
    if (positive && seconds === 0) return wrong("must be longer than 0 (leave the option out to turn it off)");
    return text;
  });
}

function isIPv6Loopback(text) {
  return net.isIPv6(text) && new URL(`http://[${text}]/`).hostname === "[::1]";
}

/** Where to probe: a loopback address, as the binary takes it. */
const host = rule((v) => {
  const loopback =
    typeof v === "string" &&
    (v === "localhost" ||
      (net.isIPv4(v) && v.startsWith("127.")) ||
      isIPv6Loopback(v.startsWith("[") && v.endsWith("]") ? v.slice(1, -1) : v));
  return loopback ? v : wrong('must be a loopback address: "localhost", an IPv4 address in 127.0.0.0/8, or "::1"');
});

const health = rule((v) =>
  typeof v === "string" && v.startsWith("/") && !/\s/.test(v) && noNul(v)
    ? v
    : wrong('must be an absolute URL path like "/health", with no whitespace'),
);

const socket = rule((v) =>
  typeof v === "string" && v !== "" && noNul(v)
    ? v
    : wrong("must be the server's local socket: a non-empty path (on Windows a pipe name, \\\\.\\pipe\\NAME) with no NUL character"),
);

const ready = rule((v) => {
  if (v === "connect" || v === "exec" || v === "notify") return v;
  const fd = typeof v === "string" && /^fd:[0-9]{1,4}$/.test(v) ? Number(v.slice(3)) : NaN;
  return fd >= 3 && fd <= 1023 ? v : wrong('must be "connect", "exec", "notify" or "fd:N" with N from 3 to 1023');
});

const processName = rule((v) =>
  typeof v === "string" && v !== "" && !v.includes("/") && noNul(v)
    ? v
    : wrong("must be a process name: a non-empty string with no '/' and no NUL character"),
);

/** up's owners: one PID or a non-empty array of them. */
const ownerPids = rule(
  (v) => {
    if (!Array.isArray(v)) return isPid(v) ? [String(v)] : wrong(`must be ${PID}, or an array of them`);
    if (v.length === 0) return wrong("must not be empty: give at least one PID, or leave it out for the default owner");
    const bad = v.findIndex((pid) => !isPid(pid));
    return bad === -1 ? v.map(String) : wrongAt(`[${bad}]`, v[bad], `must be ${PID}`);
  },
  "leave it out for the default owner (the calling process), or give a PID",
);

/** release's owner: exactly one PID. */
const ownerPid = rule(
  (v) => (isPid(v) ? String(v) : wrong(`must be ${PID}`)),
  "give the PID of the owner whose lease to drop, owner: \"session\", or all: true to drop every lease",
);

/** The server's argv: a non-empty array of strings, the first one the program. */
const command = rule((v) => {
  if (!Array.isArray(v) || v.length === 0) {
    return wrong("must be a non-empty array of strings: the server's program and its arguments");
  }
  const bad = v.findIndex((arg) => typeof arg !== "string" || !noNul(arg));
  if (bad !== -1) return wrongAt(`[${bad}]`, v[bad], "must be a string with no NUL character");
  if (v[0] === "") return wrongAt("[0]", v[0], "must be the server's program, not empty");
  return v;
});

/** The binary's environment: an object of strings (an undefined value is left out, as Node does). */
const env = rule((v) => {
  if (typeof v !== "object" || Array.isArray(v)) return wrong("must be an object of environment variables");
  for (const [key, value] of Object.entries(v)) {
    if (key === "" || key.includes("=") || !noNul(key)) {
      return wrong(`must have variable names as keys (not empty, no '=' or NUL), and ${shown(key)} is not one`);
    }
    if (value !== undefined && (typeof value !== "string" || !noNul(value))) {
      return wrongAt(`.${key}`, value, "must be a string with no NUL character, or undefined");
    }
  }
  return v;
});

const COMMON = { stateDir: file, env };
const SELECT = { name, port, socket };
const RULES = {
  up: {
    ...COMMON,
    ...SELECT,
    command,
    ownerPid: ownerPids,
    ownerAncestor: processName,
    owner: oneOf("session", "parent", "none"),
    cwd: file,
    host,
    health,
    ready,
    readyTimeout: duration(),
    grace: duration(),
    linger: duration(),
    idleTimeout: duration({ positive: true }),
    log: file,
    session: flag,
    stdin: oneOf("inherit", "null"),
    watchMethod: oneOf("auto", "pidfd", "poll"),
    contain: oneOf("auto", "cgroup", "group"),
    verbose: flag,
  },
  release: {
    ...COMMON,
    ...SELECT,
    ownerPid,
    ownerAncestor: processName,
    owner: rule(oneOf("session", "parent").check, 'give owner: "session" (or "parent"), ownerPid, ownerAncestor, or all: true'),
    all: rule((v) => (v === true ? v : wrong("must be true, or left out"))),
  },
  status: { ...COMMON, ...SELECT },
  stop: { ...COMMON, ...SELECT, all: flag, wait: flag },
};

/** A key without case and separators, to tell `ownerPID` or `owner_pid` from `ownerPid`. */
function folded(key) {
  return key.toLowerCase().replace(/[^a-z0-9]/g, "");
}

/**
 * The options of `call`, checked one by one: an object with each present option's
 * value as the binary takes it. Throws an OcwrapError of kind "invalid_option"
 * naming the first option that is wrong.
 */
function checked(call, options) {
  const rules = RULES[call];
  if (options === undefined) options = {};
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw refuse(call, null, `the options must be an object, not ${shown(options)}`);
  }
  const out = {};
  for (const key of Object.keys(options)) {
    const value = options[key];
    if (!Object.hasOwn(rules, key)) {
      const like = Object.keys(rules).find((known) => folded(known) === folded(key));
      const hint = like ? `did you mean ${like}?` : `${call} takes ${Object.keys(rules).join(", ")}`;
      throw refuse(call, key, `unknown option ${key} (${hint})`);
    }
    if (value === undefined || value === null) {
      throw refuse(call, key, `options.${key} is ${value}: ${rules[key].hint}`);
    }
    const arg = rules[key].check(value);
    if (arg instanceof Wrong) {
      const found = arg.hasValue ? arg.value : value;
      throw refuse(call, key + arg.where, `options.${key}${arg.where} ${arg.phrase}, not ${shown(found)}`);
    }
    out[key] = arg;
  }
  return out;
}

/** The selectors given: name, port, socket. */
function selectors(o) {
  return ["name", "port", "socket"].filter((key) => o[key] !== undefined);
}

/** Which supervisor: name, port or socket, never two (they would name it twice). */
function checkSelector(call, o) {
  const given = selectors(o);
  if (given.length > 1) {
    throw refuse(call, given[0], `options.${given[0]} and options.${given[1]} both say which supervisor: give one of them`);
  }
}

function checkUp(o) {
  if (o.command === undefined) {
    throw refuse("up", "command", "options.command is required: the server's program and its arguments, as an array");
  }
  if (o.port === undefined && o.name === undefined && o.socket === undefined) {
    throw refuse(
      "up",
      "port",
      "options.port, options.socket or options.name is required: which server (its port, its socket, or a name for its record)",
    );
  }
  if (o.port !== undefined && o.socket !== undefined) {
    throw refuse("up", "socket", "options.port and options.socket both say where the server listens: give one of them");
  }
  if (o.health !== undefined && o.port === undefined) {
    throw refuse("up", "health", "options.health needs options.port (it is an HTTP request to the server's port)");
  }
  if (o.idleTimeout !== undefined && o.port === undefined && o.socket === undefined) {
    throw refuse("up", "idleTimeout", "options.idleTimeout needs options.port or options.socket (it counts their connections)");
  }
  if (o.owner === "none") {
    for (const owner of ["ownerPid", "ownerAncestor"]) {
      if (o[owner] !== undefined) throw refuse("up", "owner", `options.owner "none" cannot be combined with options.${owner}`);
    }
  }
}

function checkRelease(o) {
  checkSelector("release", o);
  if (selectors(o).length === 0) {
    throw refuse("release", "port", "options.port, options.socket or options.name is required: which supervisor's lease to drop");
  }
  const given = ["ownerPid", "ownerAncestor", "owner", "all"].filter((key) => o[key] !== undefined);
  if (given.length > 1) {
    throw refuse(
      "release",
      given[1],
      `options.${given[0]} and options.${given[1]} contradict each other: give one owner (or all: true)`,
    );
  }
  if (given.length === 0) {
    throw refuse(
      "release",
      "ownerPid",
      "options.ownerPid, options.owner or options.ownerAncestor is required: whose lease to drop, named as up named it (or all: true to drop every lease)",
    );
  }
}

function checkStop(o) {
  checkSelector("stop", o);
  const [selected] = selectors(o);
  if (o.all === true && selected) {
    throw refuse("stop", "all", `options.all: true stops every supervisor: leave out options.${selected}`);
  }
  if (o.all !== true && !selected) {
    throw refuse(
      "stop",
      "port",
      "options.port, options.socket or options.name is required: which supervisor to stop (or all: true for every one)",
    );
  }
}

// --- the binary's arguments --------------------------------------------------------
// Every value travels as one `--flag=value` argument, so a value that begins with
// "-" stays a value.

/** `--flag=value` for each option of `flags` ([key, flag]) that is present. */
function valued(o, flags) {
  const args = [];
  for (const [key, flag] of flags) {
    for (const value of [].concat(o[key] ?? [])) args.push(`${flag}=${value}`);
  }
  return args;
}

/** The state dir and the selector (`--name`, `--port`, `--socket`), which most commands take. */
function selectorArgs(o) {
  return valued(o, [
    ["name", "--name"],
    ["port", "--port"],
    ["socket", "--socket"],
    ["stateDir", "--state-dir"],
  ]);
}

/** The options of `up`, in the order `ocwrap up --help` lists them, then the command. */
function upArgs(o) {
  return [
    "up",
    "--json",
    ...valued(o, [
      ["readyTimeout", "--ready-timeout"],
      ["ownerPid", "--owner-pid"],
      ["ownerAncestor", "--owner-ancestor"],
      ["owner", "--owner"],
      ["cwd", "--cwd"],
      ["grace", "--grace"],
      ["linger", "--linger"],
      ["idleTimeout", "--idle-timeout"],
      ["log", "--log"],
    ]),
    ...(o.session ? ["--session"] : []),
    ...valued(o, [
      ["stdin", "--stdin"],
      ["watchMethod", "--watch-method"],
      ["contain", "--contain"],
      ["name", "--name"],
      ["port", "--port"],
      ["host", "--host"],
      ["health", "--health"],
      ["socket", "--socket"],
      ["ready", "--ready"],
      ["stateDir", "--state-dir"],
    ]),
    ...(o.verbose ? ["--verbose"] : []),
    "--",
    ...o.command,
  ];
}

// --- running the binary ------------------------------------------------------------

/**
 * The binary's stdout read as its answer: `{ answer }` when it is exactly one JSON
 * object, else `{ problem }` saying what it was instead.
 */
function readAnswer(stdout) {
  const text = stdout.trim();
  if (text === "") return { problem: "printed nothing on stdout" };
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: `printed ${shown(text)} on stdout, which is not JSON` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    const what = Array.isArray(value) ? "an array" : value === null ? "null" : `a ${typeof value}`;
    const cut = text.length > 80 ? `${text.slice(0, 79)}…` : text;
    return { problem: `answered ${cut} (${what})` };
  }
  return { answer: value };
}

/**
 * Runs the binary with `args` and settles with its JSON answer. `accept(answer,
 * exitCode)` says whether an answer is a success (by default: exit 0).
 */
function call(args, env, accept = (_answer, exitCode) => exitCode === 0) {
  return new Promise((resolve, reject) => {
    const binary = binaryPath();
    const command = `ocwrap ${args[0]}`;
    execFile(binary, args, { encoding: "utf8", env: env ?? process.env, maxBuffer: MAX_OUTPUT }, (error, stdout, stderr) => {
      if (error && typeof error.code === "string" && String(error.syscall).startsWith("spawn")) {
        // The binary did not start: never a raw spawn failure.
        const cannotRun = CANNOT_RUN.has(error.code);
        const advice = cannotRun ? "; reinstall ocwrap, or set OCWRAP_BINARY to an ocwrap binary" : "";
        reject(
          new OcwrapError(
            `${command}: cannot start ${binary} on ${process.platform}-${process.arch} (${error.code})${advice}`,
            { kind: cannotRun ? "no_binary" : "failed", stderr },
          ),
        );
        return;
      }
      const exitCode = error ? (typeof error.code === "number" ? error.code : null) : 0;
      const { answer, problem } = readAnswer(stdout);
      if (answer && accept(answer, exitCode)) {
        resolve(answer);
        return;
      }
      if (exitCode === 0 && !answer) {
        reject(
          new OcwrapError(`${command} ${problem}; expected one JSON object`, {
            kind: "invalid_answer",
            exitCode,
            stderr,
          }),
        );
        return;
      }
      const failures = Array.isArray(answer?.errors)
        ? answer.errors.map((f) => `${f?.name}: ${f?.error}`).join("; ")
        : "";
      const message =
        (typeof answer?.error === "string" ? answer.error : null) ??
        (failures || null) ??
        saidOnStderr(stderr) ??
        error?.message ??
        `${command} exited ${exitCode} with an answer that is not a success: ${shown(stdout.trim())}`;
      const kind =
        (typeof answer?.kind === "string" ? answer.kind : null) ??
        (Array.isArray(answer?.errors) && typeof answer.errors[0]?.kind === "string" ? answer.errors[0].kind : null) ??
        "failed";
      reject(
        new OcwrapError(message, {
          kind,
          exitCode,
          exit_status: answer?.exit_status,
          log_tail: answer?.log_tail,
          stderr,
          result: answer,
        }),
      );
    });
  });
}

/**
 * The gist of what ocwrap said on stderr: clap's `error: …` line with the lines
 * that go on from it (the missing arguments, say) for a usage error, else
 * ocwrap's last `ocwrap: …` line, else its first line; null when it said nothing.
 */
function saidOnStderr(stderr) {
  const lines = stderr.split("\n");
  const at = lines.findIndex((line) => line.startsWith("error: "));
  if (at !== -1) {
    const block = [lines[at].slice("error: ".length)];
    for (const line of lines.slice(at + 1)) {
      if (line.trim() === "" || !/^\s/.test(line)) break;
      block.push(line.trim());
    }
    return block.join(" ");
  }
  const said = lines.filter((line) => line.trim() !== "");
  const own = said.filter((line) => line.startsWith("ocwrap: ")).pop();
  return own?.slice("ocwrap: ".length) ?? said[0] ?? null;
}

// --- the API -----------------------------------------------------------------------

/** Starts the server or attaches to the one that runs, once it is ready. */
async function up(options) {
  const o = checked("up", options);
  checkUp(o);
  return call(upArgs(o), o.env);
}

/**
 * Drops one owner's lease, named as `up` named it (`ownerPid`, `owner`,
 * `ownerAncestor`), or every lease (`all: true`). Returns at once.
 */
async function release(options) {
  const o = checked("release", options);
  checkRelease(o);
  const owner = valued(o, [
    ["ownerPid", "--owner-pid"],
    ["ownerAncestor", "--owner-ancestor"],
    ["owner", "--owner"],
  ]);
  return call(["release", "--json", ...selectorArgs(o), ...owner], o.env);
}

/** What ocwrap supervises now (one supervisor with `name` or `port`). */
async function status(options) {
  const o = checked("status", options);
  checkSelector("status", o);
  return call(["status", "--json", ...selectorArgs(o)], o.env);
}

/**
 * Tears down what ocwrap started (`all: true`: every supervisor of this user).
 * Resolves with `status: "not_running"` when there was nothing to stop; rejects
 * when a supervisor could not be reached.
 */
async function stop(options) {
  const o = checked("stop", options);
  checkStop(o);
  const args = ["stop", "--json", ...(o.all ? ["--all"] : []), ...selectorArgs(o), ...(o.wait ? ["--wait"] : [])];
  return call(args, o.env, (answer, exitCode) => {
    const clean = Array.isArray(answer.errors) && answer.errors.length === 0;
    return clean && (exitCode === 0 || (exitCode === 1 && answer.status === "not_running"));
  });
}

exports.up = up;
exports.release = release;
exports.status = status;
exports.stop = stop;
exports.binaryPath = binaryPath;
exports.OcwrapError = OcwrapError;
