"""Chaos suite (issue 5): SIGKILL one of {owner, ocwrap, the server, the `up`
caller} at a random moment of a random phase (starting, ready, tearing down), with
decoys alive the whole time: a server started by hand on a neighbouring port and
an unrelated long-lived process. After each iteration (running `ocwrap gc` where
ocwrap itself was killed): no process of that iteration's tree remains, no lock is
held, and every decoy is alive.

    python3 shell/chaos.py BIN_DIR [ITERATIONS] [SEED]

Prints its seed first; a failure names the iteration, victim and phase, so
`python3 shell/chaos.py BIN_DIR N SEED` replays it.
"""

import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(sys.argv[1])
ITERATIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 200
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else random.SystemRandom().randrange(1 << 32)
OCWRAP = os.path.join(BIN, "ocwrap")
FIXTURE = os.path.join(BIN, "ocwrap-fixture")
STATE = os.path.join(tempfile.mkdtemp(prefix="ocwrap-chaos-"), "state")
DEADLINE = 20.0
VICTIMS = ["owner", "ocwrap", "server", "caller"]
PHASES = ["starting", "ready", "tearing down"]


class Failure(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid):
    """True while pid runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, IndexError, ValueError):
        return None


class Pinned:
    """A process pinned by pidfd when learned: kill and wait never hit a reused PID."""

    def __init__(self, pid):
        self.pid = pid
        try:
            self.fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self.fd = None

    def running(self):
        if self.fd is None:
            return False
        return not select.select([self.fd], [], [], 0)[0] and alive(self.pid)

    def kill(self):
        if self.fd is not None:
            try:
                signal.pidfd_send_signal(self.fd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait_gone(self, deadline):
        if self.fd is None:
            return True
        return bool(select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))[0])

    def close(self):
        if self.fd is not None:
            os.close(self.fd)


def wait_for(what, condition, timeout=DEADLINE):
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise Failure(f"{what}: not within {timeout} s")
        time.sleep(0.005)


def record(port):
    try:
        with open(os.path.join(STATE, f"port-{port}.json")) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def tree_pids(port):
    """The processes the fixture announced in the log."""
    pids = []
    try:
        with open(os.path.join(STATE, f"port-{port}.log")) as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] in ("server", "child", "escapee") and words[1].isdigit():
                    pids.append(int(words[1]))
    except FileNotFoundError:
        pass
    return pids


def live_supervisors():
    out = subprocess.run([OCWRAP, "status", "--json", "--state-dir", STATE], capture_output=True, text=True, timeout=30)
    return [e["name"] for e in json.loads(out.stdout)["supervisors"] if e["live"]]


def iteration(rng, i, decoys):
    victim, phase = rng.choice(VICTIMS), rng.choice(PHASES)
    port = free_port()
    owner = subprocess.Popen([FIXTURE, "sleep"], stdout=subprocess.DEVNULL)
    owner_pin = Pinned(owner.pid)
    fixture = ["tree", "--listen", str(port), "--children", "1", "--escape"]
    if phase == "starting":
        fixture += ["--listen-after", str(rng.randint(50, 200))]
    if phase == "tearing down":
        fixture += ["--ignore-term"]
    caller = subprocess.Popen(
        [OCWRAP, "up", "--json", "--state-dir", STATE, "--port", str(port), "--owner-pid", str(owner.pid),
         "--grace", "300ms", "--ready-timeout", "10s", "--", FIXTURE, *fixture],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    caller_pin = Pinned(caller.pid)
    pinned = {"owner": owner_pin, "caller": caller_pin}
    ocwrap_killed = False

    def learn():
        r = record(port)
        if r:
            pinned.setdefault("ocwrap", Pinned(r["supervisor"]["pid"]))
            pinned.setdefault("server", Pinned(r["server"]["pid"]))

    if phase == "starting":
        # A random moment after the supervisor exists, while the server starts.
        wait_for("a record while starting", lambda: record(port) is not None or caller.poll() is not None)
        learn()
        time.sleep(rng.uniform(0, 0.05))
    else:
        out, _ = caller.communicate(timeout=30)
        answer = json.loads(out)
        if answer["status"] != "started":
            raise Failure(f"up answered {answer}")
        learn()
        if phase == "tearing down":
            owner_pin.kill()  # teardown begins; the server ignores SIGTERM for 300 ms
            time.sleep(rng.uniform(0, 0.25))
        else:
            time.sleep(rng.uniform(0, 0.05))
    tree = [Pinned(p) for p in tree_pids(port)]
    target = pinned.get(victim)
    if target is not None:
        target.kill()
        ocwrap_killed = victim == "ocwrap"
    # End the iteration the normal way: the owner goes.
    owner_pin.kill()
    owner.wait()
    try:
        caller.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        raise Failure("the up caller did not return")
    sup = pinned.get("ocwrap")
    end = time.monotonic() + DEADLINE
    if sup is not None and not ocwrap_killed and not sup.wait_gone(end):
        raise Failure("the supervisor did not exit after its owner died")
    if ocwrap_killed:
        # Its lock is free only once the SIGKILLed supervisor has exited; a gc
        # before that would still see it live and clean nothing.
        if sup is not None and not sup.wait_gone(end):
            raise Failure("the SIGKILLed supervisor did not exit")
        subprocess.run([OCWRAP, "gc", "--state-dir", STATE], capture_output=True, timeout=60)
    # Everything announced, including what was announced after we looked.
    tree += [Pinned(p) for p in tree_pids(port) if p not in [t.pid for t in tree]]
    for proc in tree + [p for p in pinned.values() if p is not None]:
        if not proc.wait_gone(end) or proc.running():
            raise Failure(f"pid {proc.pid} of the tree still runs")
    if live_supervisors():
        raise Failure(f"a lock is still held: {live_supervisors()}")
    for name, decoy in decoys.items():
        if not decoy.running():
            raise Failure(f"decoy {name} (pid {decoy.pid}) died")
    for proc in tree + list(pinned.values()):
        proc.close()
    return victim, phase


def main():
    print(f"chaos: seed {SEED}, {ITERATIONS} iterations, state dir {STATE}", flush=True)
    rng = random.Random(SEED)
    decoy_port = free_port()
    hand = subprocess.Popen([FIXTURE, "tree", "--listen", str(decoy_port)], stdout=subprocess.DEVNULL)
    other = subprocess.Popen([FIXTURE, "sleep"], stdout=subprocess.DEVNULL)
    decoys = {"hand-started server": Pinned(hand.pid), "unrelated process": Pinned(other.pid)}
    wait_for("the hand-started decoy server listens", lambda: socket.socket().connect_ex(("127.0.0.1", decoy_port)) == 0)
    counts = {}
    began = time.monotonic()
    try:
        for i in range(ITERATIONS):
            try:
                key = iteration(rng, i, decoys)
            except (Failure, subprocess.TimeoutExpired, json.JSONDecodeError, KeyError) as e:
                print(f"chaos: FAILED at iteration {i} (seed {SEED}): {e}", flush=True)
                return 1
            counts[key] = counts.get(key, 0) + 1
        # The decoy server must also still answer on its port.
        if socket.socket().connect_ex(("127.0.0.1", decoy_port)) != 0:
            print("chaos: FAILED: the hand-started decoy server stopped answering")
            return 1
    finally:
        hand.kill()
        other.kill()
    took = time.monotonic() - began
    for (victim, phase), n in sorted(counts.items()):
        print(f"chaos:   {victim:>6} killed while {phase}: {n}")
    print(f"chaos: {ITERATIONS} passed, 0 failed ({took:.0f} s, seed {SEED})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
