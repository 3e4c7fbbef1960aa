#!/usr/bin/env python3
"""`npx ocwrap` from a project that installed the packed tarballs, as a user runs it
from a shell (shell/npm.sh runs this):

    python3 shell/npx_check.py PROJECT FIXTURE VERSION CONTAINMENT

CONTAINMENT (cgroup or group) is what ocwrap must say it holds the tree in: what
`--contain auto` gives the user this runs as (root: a cgroup; nobody: the process
group). The state dir is OCWRAP_STATE_DIR if set, else PROJECT/npx-state.

  1. `npx ocwrap --version` prints the version and exits 0;
  2. `npx ocwrap -- sh -c 'exit 7'` exits 7, and a server ended by SIGTERM gives
     143: ocwrap's exit code passes through;
  3. under a terminal (a pty), `npx ocwrap -v --grace 2s -- FIXTURE tree …` with a
     server that ignores SIGINT and SIGTERM, then Ctrl-C at the terminal: ocwrap
     is asked to stop once (the grace is kept), npx exits, and nothing of it is
     left running: not the fixture, its grandchild, ocwrap, nor the bin shim;
  4. with no terminal, SIGTERM to the npx process: the same, and its status says
     it was ended by SIGTERM (the shell's 143) or exited 143;
  5. SIGKILL of the npx process (`npm exec`) alone: the same, npm's `sh -c`
     included (the shim watches npm, as that shell would wait on it forever).

Every wait has a deadline and says what did not happen. Prints one line a check
and `npx: N passed` at the end; exits 1 at the first failure.
"""

import fcntl
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time

import procwait
from procwait import start_time

DEADLINE = 30.0
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# The npx processes started so far (each leads its own session): on a failure,
# each gets SIGTERM at its whole group, as a terminal's hangup would send, so that
# ocwrap tears its tree down rather than leave it running.
started = []


def fail(message):
    print(f"npx: FAILED: {message}", file=sys.stderr)
    for process in started:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=DEADLINE)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
    sys.exit(1)


def parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def await_gone(processes, what):
    """Waits until none of (pid, start) runs any more (on pidfds)."""
    end = time.monotonic() + DEADLINE
    for pid, start in processes:
        if not procwait.wait_gone(pid, start, end - time.monotonic()):
            fail(f"{what}: pid {pid} still runs {DEADLINE:.0f} s later")


class Lines:
    """Reads a stream's lines as they come, with a deadline."""

    def __init__(self, fd):
        self.fd = fd
        self.buffer = b""
        self.seen = []

    def until(self, pattern, what):
        end = time.monotonic() + DEADLINE
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                text = ANSI.sub("", line.decode(errors="replace")).strip("\r")
                self.seen.append(text)
                # Under a terminal npm draws a spinner on the same line first.
                found = re.search(pattern, text)
                if found:
                    return text[found.start():]
            left = end - time.monotonic()
            if left <= 0:
                fail(f"{what}: no line like /{pattern}/ within {DEADLINE:.0f} s; saw {self.seen}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # a pty's other end closed
                    chunk = b""
                if not chunk:
                    fail(f"{what}: output ended before a line like /{pattern}/; saw {self.seen}")
                self.buffer += chunk


    def rest(self, what):
        """Every line until the other end closes (a pty: once no process holds it)."""
        end = time.monotonic() + DEADLINE
        while True:
            left = end - time.monotonic()
            if left <= 0:
                fail(f"{what}: the output did not end within {DEADLINE:.0f} s; saw {self.seen}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: a pty whose other end is closed
                chunk = b""
            if not chunk:
                break
            self.buffer += chunk
        lines = [ANSI.sub("", line.decode(errors="replace")).strip("\r") for line in self.buffer.split(b"\n")]
        self.buffer = b""
        self.seen.extend(lines)
        return self.seen


def tree_of(lines, what):
    """The fixture's server and grandchild, and ocwrap and the shim above them, with start times."""
    server_line = lines.until(r"^\W*server \d+ ppid \d+", what)
    server = int(server_line.split()[1])
    ocwrap = int(server_line.split()[3])
    child = int(lines.until(r"^\W*child \d+", what).split()[1])
    lines.until(r"^\W*ready$", what)
    shim = parent(ocwrap)
    with open(f"/proc/{shim}/cmdline", "rb") as f:
        shim_cmd = f.read().split(b"\0")
    if not any(part.endswith(b"bin/ocwrap.js") or part.endswith(b".bin/ocwrap") for part in shim_cmd):
        fail(f"{what}: ocwrap's parent {shim} is not the package's bin shim: {shim_cmd}")
    processes = [(pid, start_time(pid)) for pid in (server, child, ocwrap, shim)]
    if any(start is None for _, start in processes):
        fail(f"{what}: the tree does not all run: {processes}")
    return processes


def wait_exit(process, what):
    try:
        return process.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        fail(f"{what}: npx did not exit within {DEADLINE:.0f} s")


def main(argv):
    if len(argv) != 5 or argv[4] not in ("cgroup", "group"):
        print("usage: python3 shell/npx_check.py PROJECT FIXTURE VERSION cgroup|group", file=sys.stderr)
        return 2
    project, fixture, version, containment = argv[1:]
    npx = ["npx", "--offline", "--no-install", "ocwrap"]
    env = {k: v for k, v in os.environ.items() if k != "OCWRAP_BINARY"}
    env.setdefault("OCWRAP_STATE_DIR", os.path.join(project, "npx-state"))
    passed = 0

    out = subprocess.run(npx + ["--version"], cwd=project, env=env, capture_output=True, text=True, timeout=DEADLINE)
    if out.returncode != 0 or out.stdout.strip() != f"ocwrap {version}":
        fail(f"npx ocwrap --version: exit {out.returncode}, printed {out.stdout!r} {out.stderr!r}")
    print(f"npx: ok: npx ocwrap --version: {out.stdout.strip()}")
    passed += 1

    out = subprocess.run(npx + ["--", "sh", "-c", "exit 7"], cwd=project, env=env, capture_output=True, text=True,
                         timeout=DEADLINE)
    if out.returncode != 7:
        fail(f"npx ocwrap -- sh -c 'exit 7': exit {out.returncode}, stderr {out.stderr!r}")
    print("npx: ok: npx ocwrap -- sh -c 'exit 7' exits 7")
    out = subprocess.run(npx + ["--", "sh", "-c", "kill -TERM $$"], cwd=project, env=env, capture_output=True,
                         text=True, timeout=DEADLINE)
    if out.returncode != 143:
        fail(f"npx ocwrap -- sh -c 'kill -TERM $$': exit {out.returncode}, not 143 as ocwrap's; stderr {out.stderr!r}")
    print("npx: ok: npx ocwrap -- sh -c 'kill -TERM $$' exits 143, as ocwrap does")
    passed += 1

    # Ctrl-C at a terminal: the pty's line discipline sends SIGINT to its foreground
    # process group, which npx, its shell, the shim and ocwrap share. The server
    # ignores SIGINT and SIGTERM, so the teardown lasts the 2 s grace: had the shim
    # passed the SIGINT on as well, ocwrap would take it as a second stop request
    # within the grace, and say "SIGINT: SIGKILL now".
    what = "Ctrl-C under a terminal"
    master, slave = pty.openpty()
    server = ["sh", "-c", f"trap '' INT TERM; exec {fixture} tree --children 1"]
    process = subprocess.Popen(npx + ["-v", "--grace", "2s", "--"] + server, cwd=project, env=env,
                               stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                               preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    started.append(process)
    os.close(slave)
    lines = Lines(master)
    processes = tree_of(lines, what)
    os.write(master, b"\x03")
    status = wait_exit(process, what)
    await_gone(processes, what)
    # The terminal echoes ^C before what ocwrap says next.
    said = [found.group(0) for found in map(re.compile(r"ocwrap: SIGINT: .*").search, lines.rest(what)) if found]
    os.close(master)
    if status not in (130, -signal.SIGINT):
        fail(f"{what}: npx exited {status}, not by SIGINT (130)")
    if said != ["ocwrap: SIGINT: tearing down"]:
        fail(f"{what}: ocwrap was not asked to stop exactly once: {said}; saw {lines.seen}")
    # "containment: cgroup /sys/fs/cgroup/…" or "containment: process group and subreaper tree"
    held = [{"cgroup": "cgroup", "process": "group"}.get(found.group(1), found.group(1))
            for found in map(re.compile(r"ocwrap: containment: (\w+)").search, lines.seen) if found]
    if held != [containment]:
        fail(f"{what}: ocwrap held the tree in {held}, not in a {containment}")
    print(f"npx: ok: {what} ({containment}): npx exited {status}; ocwrap got one SIGINT; fixture, grandchild, ocwrap and shim gone")
    passed += 1

    def without_terminal(what):
        """npx with the fixture's tree, no terminal: the process and the tree."""
        process = subprocess.Popen(npx + ["--", fixture, "tree", "--children", "1"], cwd=project, env=env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        started.append(process)
        return process, tree_of(Lines(process.stdout.fileno()), what)

    what = "SIGTERM with no terminal"
    process, processes = without_terminal(what)
    process.send_signal(signal.SIGTERM)
    status = wait_exit(process, what)
    await_gone(processes, what)
    if status not in (143, -signal.SIGTERM):
        fail(f"{what}: npx exited {status}, not by SIGTERM (143)")
    print(f"npx: ok: {what}: npx exited {status}; fixture, grandchild, ocwrap and shim gone")
    passed += 1

    # SIGKILL of `npm exec` alone: its `sh -c` stays, waiting on the shim, and the
    # shim's watch of npm must end the tree.
    what = "SIGKILL of npm exec alone"
    process, processes = without_terminal(what)
    shell = parent(processes[3][0])
    process.kill()
    process.wait(timeout=DEADLINE)
    await_gone(processes + [(shell, start_time(shell))], what)
    print(f"npx: ok: {what}: fixture, grandchild, ocwrap, shim and npm's shell gone")
    passed += 1

    print(f"npx: {passed} passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
