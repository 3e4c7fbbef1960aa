// How the installed ocwrap package finds its binary on each of the six platforms,
// simulated here: process.platform and process.arch are set before the package is
// loaded, in a node_modules that holds the main package and the platform packages
// unpacked from their tarballs (OCWRAP_DIST, the folder shell/dist.sh packs into).
// Under each platform binaryPath() resolves to that platform's binary; without its
// package, or with a package whose binary is missing, not executable or built for
// another CPU, it throws an OcwrapError of kind "no_binary" naming the platform and
// what to do, and a call rejects with it at once (never a hang, never a raw
// spawn failure).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";

const dist = process.env.OCWRAP_DIST;
assert.ok(dist, "OCWRAP_DIST names the folder of the packed tarballs");
const manifest = createRequire(import.meta.url)("ocwrap/package.json");
const version = manifest.version;
const mainPackage = dirname(createRequire(import.meta.url).resolve("ocwrap/package.json"));

/** The platforms, as the main package lists their packages. */
const PLATFORMS = Object.keys(manifest.optionalDependencies).map((name) => name.replace("@ocwrap/", ""));
const exe = (platform) => (platform.startsWith("win32-") ? "ocwrap.exe" : "ocwrap");

/** A fresh node_modules with the main package and the named platform packages. */
function sandbox(platforms) {
  const top = realpathSync(mkdtempSync(join(tmpdir(), "ocwrap-platforms-")));
  cpSync(mainPackage, join(top, "node_modules", "ocwrap"), { recursive: true });
  for (const platform of platforms) {
    const into = join(top, "node_modules", "@ocwrap", platform);
    mkdirSync(into, { recursive: true });
    const tarball = join(dist, `ocwrap-${platform}-${version}.tgz`);
    execFileSync("tar", ["-xzf", tarball, "-C", into, "--strip-components=1"]);
  }
  return top;
}

/**
 * binaryPath() (and, with `call`, an `up` call) as the package sees it on
 * `platform`: its path, or the OcwrapError's kind and message.
 */
function underPlatform(top, platform, { call = false } = {}) {
  const [os, arch] = platform.split("-");
  const script = `
    Object.defineProperty(process, "platform", { value: ${JSON.stringify(os)} });
    Object.defineProperty(process, "arch", { value: ${JSON.stringify(arch)} });
    const ocwrap = require(${JSON.stringify(join(top, "node_modules", "ocwrap"))});
    const show = (e) => JSON.stringify({ name: e.name, kind: e.kind, message: e.message });
    if (${call}) {
      ocwrap.up({ port: 1, command: ["true"] }).then(
        () => console.log(JSON.stringify({ resolved: true })),
        (e) => console.log(show(e)),
      );
    } else {
      try { console.log(JSON.stringify({ path: ocwrap.binaryPath() })); } catch (e) { console.log(show(e)); }
    }`;
  const env = { ...process.env };
  delete env.OCWRAP_BINARY;
  return JSON.parse(execFileSync(process.execPath, ["-e", script], { encoding: "utf8", env, timeout: 20_000 }));
}

test("under each platform, binaryPath() is that platform's package's binary", () => {
  const top = sandbox(PLATFORMS);
  for (const platform of PLATFORMS) {
    const found = underPlatform(top, platform);
    assert.equal(found.path, join(top, "node_modules", "@ocwrap", platform, "bin", exe(platform)), platform);
  }
  rmSync(top, { recursive: true });
});

test("without its package, each platform's error names the platform and the package", () => {
  const top = sandbox([]);
  for (const platform of PLATFORMS) {
    const found = underPlatform(top, platform);
    assert.equal(found.kind, "no_binary", platform);
    assert.match(found.message, new RegExp(`^no ocwrap binary for ${platform}: @ocwrap/${platform} is not installed`));
    assert.match(found.message, /reinstall ocwrap on this machine, or set OCWRAP_BINARY/);
  }
  const other = underPlatform(top, "freebsd-x64");
  assert.equal(other.kind, "no_binary");
  assert.match(other.message, /^ocwrap has no binary package for freebsd-x64 \(only for linux-x64, linux-arm64, darwin-arm64/);
  rmSync(top, { recursive: true });
});

test("a package without its binary, with one that cannot run, or with another CPU's: a clear error, and a call rejects with it", () => {
  const cases = [
    {
      what: "no binary",
      spoil: (bin) => rmSync(bin),
      message: /^no ocwrap binary for linux-x64: \S+\/@ocwrap\/linux-x64\/bin\/ocwrap \(of @ocwrap\/linux-x64\) is missing; reinstall ocwrap/,
    },
    {
      what: "not executable",
      spoil: (bin) => chmodSync(bin, 0o644),
      message: /^no ocwrap binary for linux-x64: \S+ \(of @ocwrap\/linux-x64\) is not executable \(mode 0644: unpacked without its modes\?\); reinstall ocwrap/,
    },
    {
      what: "another CPU's",
      spoil: (bin, top) => copyFileSync(join(top, "node_modules", "@ocwrap", "linux-arm64", "bin", "ocwrap"), bin),
      message: /^no ocwrap binary for linux-x64: \S+ \(of @ocwrap\/linux-x64\) is an ELF binary for arm64, not an ELF binary for x86-64 \(a package made for another machine\?\); reinstall ocwrap on this machine/,
    },
    {
      what: "another system's",
      spoil: (bin, top) => copyFileSync(join(top, "node_modules", "@ocwrap", "darwin-x64", "bin", "ocwrap"), bin),
      message: /is a Mach-O binary for x86-64, not an ELF binary for x86-64/,
    },
    {
      what: "not a binary",
      spoil: (bin) => writeFileSync(bin, "#!/bin/sh\nexit 0\n"),
      message: /is not a binary at all, not an ELF binary for x86-64/,
    },
  ];
  for (const { what, spoil, message } of cases) {
    const top = sandbox(["linux-x64", "linux-arm64", "darwin-x64"]);
    const bin = join(top, "node_modules", "@ocwrap", "linux-x64", "bin", "ocwrap");
    spoil(bin, top);
    for (const call of [false, true]) {
      const found = underPlatform(top, "linux-x64", { call });
      assert.equal(found.name, "OcwrapError", `${what} (${call ? "up" : "binaryPath"}): ${JSON.stringify(found)}`);
      assert.equal(found.kind, "no_binary", what);
      assert.match(found.message, message, what);
    }
    rmSync(top, { recursive: true });
  }
});

test("a binary the system cannot start is a no_binary error, not a raw spawn failure", () => {
  const top = sandbox([]);
  // Executable, and the kernel refuses it at exec: its interpreter does not exist.
  const junk = join(top, "ocwrap");
  writeFileSync(junk, "#!/nonexistent/interpreter\n");
  chmodSync(junk, 0o755);
  const script = `
    require(${JSON.stringify(join(top, "node_modules", "ocwrap"))})
      .status({}).then(() => console.log("resolved"), (e) => console.log(JSON.stringify({ name: e.name, kind: e.kind, message: e.message })));`;
  const found = JSON.parse(
    execFileSync(process.execPath, ["-e", script], { encoding: "utf8", env: { ...process.env, OCWRAP_BINARY: junk }, timeout: 20_000 }),
  );
  assert.equal(found.name, "OcwrapError");
  assert.equal(found.kind, "no_binary");
  assert.match(found.message, /^ocwrap status: cannot start \S+ on linux-x64 \(ENOENT\); reinstall ocwrap, or set OCWRAP_BINARY/);
  rmSync(top, { recursive: true });
});
