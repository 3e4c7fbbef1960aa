#!/usr/bin/env python3
"""The plugin kit (examples/claude-code-plugin/) under a stand-in Claude Code,
against the real `opencode serve` (shell/npm.sh runs this):

    python3 shell/claude_kit.py PROJECT OCWRAP

PROJECT has the npm tarballs installed offline (standing in for what
`npx --yes ocwrap@VERSION` downloads on first use: npx finds them there, and
npm_config_offline keeps it from asking the registry); OCWRAP is that install's
binary, for `status`. `opencode` must be on PATH, `ocwrap` must not be (the kit
would take it instead of npx).

A session here is this script run as `claude` (argv[0], as the real CLI's process
title), a long-lived process that runs the kit's hooks as Claude Code does: the
commands of hooks/hooks.json, read from the kit itself, under `sh -c`, in the
project directory, with CLAUDE_PLUGIN_ROOT, CLAUDE_PROJECT_DIR and
CLAUDE_CODE_SESSION_ID set and the hook's JSON on stdin; SessionEnd killed at its
1.5 s budget. A session may also write Claude Code's session record
(`$CLAUDE_CONFIG_DIR/sessions/<pid>.json` with its start time), as recent
versions do; the others are found by their name.

Scenarios: a session SIGKILLed takes the server with it; two sessions share one
server, gone after both; /clear keeps it; a server started by hand is `external`
and never touched; a caller outside any session (`npx ocwrap up --owner session`
from a shell) leases to that shell, past npx and the launcher, without an error.
Every wait has a deadline and says what did not happen. Prints one line a check
and `kit: N passed` at the end; exits 1 at the first failure.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import procwait
from procwait import start_time

DEADLINE = 60.0
SESSION_END_BUDGET = 1.5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIT = os.path.join(ROOT, "examples", "claude-code-plugin")

started = []  # every process this script started, for the clean-up on failure


def fail(message):
    print(f"kit: FAILED: {message}", file=sys.stderr)
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
    sys.exit(1)


def wait_gone(what, pid, start, deadline=DEADLINE):
    """Waits on a pidfd until the process PID that started at START has exited."""
    if not procwait.wait_gone(pid, start, deadline):
        fail(f"{what}: not within {deadline:.0f} s")


def wait_for(what, condition, deadline=DEADLINE):
    """Re-checks CONDITION every 50 ms until it holds: only for what no event
    announces (a port that answers its health path, a port that is free)."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            fail(f"{what}: not within {deadline:.0f} s")
        time.sleep(0.05)


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/global/health", timeout=2) as r:
            return 200 <= r.status < 300
    except OSError:
        return False


def port_free(port):
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the stand-in Claude Code session (this script as `claude session …`) ---------


def session_main(plugin, project, record):
    """Reads `start SOURCE`, `end REASON` and `exit` lines; runs the kit's hooks
    for each and answers with one JSON line."""
    session_id = str(uuid.uuid4())
    config = os.environ["CLAUDE_CONFIG_DIR"]
    record_path = os.path.join(config, "sessions", f"{os.getpid()}.json")
    if record:
        os.makedirs(os.path.dirname(record_path), exist_ok=True)
        with open(record_path, "w") as f:
            json.dump(
                {
                    "pid": os.getpid(),
                    "sessionId": session_id,
                    "cwd": project,
                    "startedAt": int(time.time() * 1000),
                    "procStart": start_time(os.getpid()),
                    "kind": "interactive",
                },
                f,
            )
    with open(os.path.join(plugin, "hooks", "hooks.json")) as f:
        hooks = json.load(f)["hooks"]
    env = dict(
        os.environ,
        CLAUDECODE="1",
        CLAUDE_PLUGIN_ROOT=plugin,
        CLAUDE_PROJECT_DIR=project,
        CLAUDE_CODE_SESSION_ID=session_id,
    )
    print(json.dumps({"session": os.getpid(), "session_id": session_id}), flush=True)
    for line in sys.stdin:
        verb, _, arg = line.strip().partition(" ")
        if verb == "exit":
            break
        event = {"start": "SessionStart", "end": "SessionEnd"}[verb]
        field = "source" if event == "SessionStart" else "reason"
        answers = []
        for group in hooks.get(event, []):
            matcher = group.get("matcher", "")
            if matcher not in ("", "*") and not re.fullmatch(matcher, arg):
                continue
            for hook in group["hooks"]:
                budget = SESSION_END_BUDGET if event == "SessionEnd" else hook.get("timeout", 60)
                answers.append(run_hook(hook["command"], env, project, {
                    "session_id": session_id,
                    "transcript_path": os.path.join(config, "projects", f"{session_id}.jsonl"),
                    "cwd": project,
                    "hook_event_name": event,
                    field: arg,
                }, budget))
        print(json.dumps({"event": event, "hooks": answers}), flush=True)
    if record:
        os.unlink(record_path)


def run_hook(command, env, cwd, payload, budget):
    began = time.monotonic()
    hook = subprocess.Popen(
        ["sh", "-c", command], cwd=cwd, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    killed = False
    try:
        out, err = hook.communicate(json.dumps(payload).encode(), timeout=budget)
    except subprocess.TimeoutExpired:
        # As Claude Code does at the budget: the hook's shell is killed.
        killed = True
        hook.kill()
        out, err = hook.communicate()
    return {
        "rc": hook.returncode,
        "ms": round((time.monotonic() - began) * 1000),
        "killed": killed,
        "stdout": out.decode(errors="replace"),
        "stderr": err.decode(errors="replace"),
    }


# --- the scenarios ---------------------------------------------------------------


class Session:
    def __init__(self, env, project, record):
        self.process = subprocess.Popen(
            ["claude", os.path.abspath(__file__), "session", KIT, project, "1" if record else "0"],
            executable=sys.executable, env=env, cwd=project,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        started.append(self.process)
        hello = json.loads(self.read("the session's first line"))
        self.pid = hello["session"]
        with open(f"/proc/{self.pid}/cmdline", "rb") as f:
            if f.read().split(b"\0")[0] != b"claude":
                fail("the stand-in session is not named claude")

    def read(self, what):
        line = self.process.stdout.readline()
        if not line:
            fail(f"{what}: the session ended")
        return line

    def hook(self, verb, arg):
        self.process.stdin.write(f"{verb} {arg}\n")
        self.process.stdin.flush()
        answer = json.loads(self.read(f"{verb} {arg}"))
        if len(answer["hooks"]) != 1:
            fail(f"{verb} {arg}: {len(answer['hooks'])} hooks ran, not the kit's one")
        result = answer["hooks"][0]
        if result["stdout"]:
            fail(f"{verb} {arg}: the hook printed {result['stdout']!r}, which Claude Code would add to the context")
        return result

    def start(self, source="startup"):
        result = self.hook("start", source)
        if result["rc"] != 0:
            fail(f"SessionStart {source}: exit {result['rc']}: {result['stderr']}")
        return result

    def end(self, reason):
        result = self.hook("end", reason)
        if result["killed"] or result["rc"] != 0:
            fail(f"SessionEnd {reason}: exit {result['rc']} after {result['ms']} ms (killed: {result['killed']}): {result['stderr']}")
        return result

    def exit(self):
        self.process.stdin.write("exit\n")
        self.process.stdin.flush()
        if self.process.wait(timeout=DEADLINE) != 0:
            fail("the session did not exit cleanly")

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def status(ocwrap, env):
    out = subprocess.run([ocwrap, "status", "--json"], env=env, capture_output=True, text=True, check=True).stdout
    return {s["name"]: s for s in json.loads(out)["supervisors"] if s["live"]}


def main(project, ocwrap):
    env = dict(os.environ)
    for var in ("CLAUDE_CODE_SESSION_ID", "CLAUDECODE", "OCWRAP_BINARY"):
        env.pop(var, None)
    if subprocess.run(["sh", "-c", "command -v ocwrap"], env=env, capture_output=True).returncode == 0:
        fail("an ocwrap is on PATH: the kit would take it instead of npx")
    with open(os.path.join(project, "node_modules", "ocwrap", "package.json")) as f:
        if json.load(f)["version"] != version():
            fail(f"the kit runs ocwrap@{version()}, and the package is another version")
    port = free_port()
    work = tempfile.mkdtemp(prefix="ocwrap-kit-")
    os.makedirs(os.path.join(work, "claude", "sessions"))
    env.update(
        OPENCODE_PORT=str(port),
        OCWRAP_STATE_DIR=os.path.join(work, "state"),
        CLAUDE_CONFIG_DIR=os.path.join(work, "claude"),
        npm_config_offline="true",
    )
    name = f"port-{port}"
    passed = 0

    def check(message):
        nonlocal passed
        passed += 1
        print(f"kit: ok {passed}: {message}")

    def server_of(what):
        live = status(ocwrap, env)
        if name not in live:
            fail(f"{what}: no live supervisor for {name}")
        record = live[name]["record"]
        supervisor = (record["supervisor"]["pid"], str(record["supervisor"]["start"]))
        return record, (record["server"]["pid"], str(record["server"]["start"])), supervisor

    def gone(what, pid_start):
        wait_gone(what, *pid_start)

    # 1. A session (with its session record) SIGKILLed: the server goes with it.
    a = Session(env, project, record=True)
    took = a.start()["ms"]
    if not healthy(port):
        fail("SessionStart returned before the server was healthy")
    record, server, supervisor = server_of("after SessionStart")
    if [o["pid"] for o in record["owners"]] != [a.pid]:
        fail(f"the owner is {record['owners']}, not the session {a.pid}")
    if record["cwd"] != project:
        fail(f"the server runs in {record['cwd']}, not the project {project}")
    a.kill()
    gone("the server after its session was SIGKILLed", server)
    gone("the supervisor after its session was SIGKILLed", supervisor)
    wait_for("the port to be free", lambda: port_free(port))
    check(f"SessionStart through npx brought opencode up for the session ({took} ms); SIGKILL of the session took it down")

    # 2. Two sessions (one found by its record, one by its name): one server.
    a = Session(env, project, record=True)
    b = Session(env, project, record=False)
    a.start()
    b.start()
    record, server, supervisor = server_of("two sessions")
    if sorted(o["pid"] for o in record["owners"]) != sorted([a.pid, b.pid]):
        fail(f"owners {record['owners']}, not both sessions {a.pid} {b.pid}")
    ended = a.end("logout")
    if [o["pid"] for o in server_of("after A's SessionEnd")[0]["owners"]] != [b.pid]:
        fail("A's lease was not dropped at its SessionEnd")
    a.exit()
    if start_time(server[0]) != server[1] or not healthy(port):
        fail("the server did not stay for the second session")
    b.end("prompt_input_exit")
    b.exit()
    gone("the server after both sessions ended", server)
    gone("the supervisor after both sessions ended", supervisor)
    check(f"two sessions shared one server; it stayed for B after A's SessionEnd ({ended['ms']} ms) and went after B's")

    # 3. /clear: SessionEnd(clear) and SessionStart(clear) in the same process.
    a = Session(env, project, record=False)
    a.start()
    _, server, supervisor = server_of("before /clear")
    cleared = a.end("clear")
    a.start("clear")
    record, server_after, _ = server_of("after /clear")
    if server_after != server or [o["pid"] for o in record["owners"]] != [a.pid]:
        fail(f"/clear changed the server or its leases: {record['owners']}")
    a.end("other")
    a.exit()
    gone("the server after the session's real end", server)
    gone("the supervisor after the session's real end", supervisor)
    check(f"/clear kept the server and its one lease ({cleared['ms']} ms); the real end took it down")

    # 4. A server started by hand is external: never recorded, never touched.
    theirs = subprocess.Popen(
        ["opencode", "serve", "--hostname", "127.0.0.1", "--port", str(port)],
        env=env, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    started.append(theirs)
    wait_for("the hand-started opencode to be healthy", lambda: healthy(port))
    a = Session(env, project, record=True)
    a.start()
    # Nothing supervises it, so nothing can tear it down.
    if status(ocwrap, env):
        fail("ocwrap supervises something after SessionStart found a server started by hand")
    a.end("logout")
    a.kill()
    if status(ocwrap, env) or theirs.poll() is not None or not healthy(port):
        fail("the hand-started server was touched")
    theirs.terminate()
    theirs.wait(timeout=DEADLINE)
    wait_for("the hand-started server's port to be free", lambda: port_free(port))
    check("a server started by hand is external: not recorded, not touched after the session's end")

    # 5. A caller outside any session: its shell is the owner, no error.
    shell = subprocess.Popen(
        ["sh", "-c", 'npx --yes ocwrap@"$1" up --json --owner session --port "$2" --health /global/health '
         '-- opencode serve --hostname 127.0.0.1 --port "$2"; echo "exit $?"; read line',
         "sh", version(), str(port)],
        env=env, cwd=project, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    started.append(shell)
    answer = json.loads(shell.stdout.readline())
    if shell.stdout.readline().strip() != "exit 0":
        fail(f"up outside a session failed: {answer}")
    if answer["leases"] != [{"pid": shell.pid, "start": int(start_time(shell.pid)), "found_by": "parent"}]:
        fail(f"outside a session the lease is {answer['leases']}, not the shell {shell.pid} (past npx)")
    _, server, supervisor = server_of("outside a session")
    if start_time(server[0]) != server[1]:
        fail("the server went when npx returned")
    shell.kill()
    shell.wait()
    gone("the server after its caller's shell was killed", server)
    # The supervisor removes its state files last: the work dir is not
    # removed under it.
    gone("the supervisor after its caller's shell was killed", supervisor)
    check("outside any session `npx ocwrap up --owner session` leased to the calling shell, past npx")

    shutil.rmtree(work)
    print(f"kit: {passed} passed")


def version():
    with open(os.path.join(KIT, "hooks", "opencode-server.sh")) as f:
        return re.search(r"ocwrap@([0-9][^ ]*)", f.read()).group(1)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "session":
        session_main(sys.argv[2], sys.argv[3], sys.argv[4] == "1")
    elif len(sys.argv) == 3:
        main(os.path.abspath(sys.argv[1]), sys.argv[2])
    else:
        sys.exit(__doc__)
