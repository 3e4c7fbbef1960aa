"""Chaos suite: SIGKILL one of {owner, ocwrap, the server, the
`up` caller} at a random moment of a random phase (starting, ready, tearing down),
under a random perturbation of the control socket or the state dir, with decoys
alive the whole time: a server started by hand on another port and an unrelated
long-lived process.

    python3 shell/chaos.py BIN_DIR [ITERATIONS] [SEED]

Environment:
    CHAOS_VICTIMS       comma list drawn from owner,ocwrap,server,caller (default all)
    CHAOS_PERTURB       comma list drawn from none,silent,drip,wipe (default all)
    CHAOS_FROM          first iteration to run; earlier ones are drawn, not run (replay)
    CHAOS_MAX_FAILURES  stop after this many failed iterations (default 1)
    CHAOS_REACT_SLACK   seconds a supervisor may take beyond --grace to finish after
                        its owner's death (default 10: a stall, not a slow machine)
    CHAOS_CONTAIN       auto|cgroup|group: the --contain of every ocwrap the suite
                        starts (default auto). With cgroup or group, every record and
                        every server must show that containment (see below).
    CHAOS_USER          run the suite as this user (e.g. nobody); see "As another user"

Containment. `OCWRAP_*` is stripped from the environment; each `up` gets
`--contain CHAOS_CONTAIN`. With `cgroup`, each record must say `contain: cgroup`
and name a cgroup `ocwrap-<supervisor marker>` directly inside the suite's own
cgroup, and each server must be in that cgroup; with `group`, the record must say
`contain: group` and the server must be in the suite's own cgroup.

As another user. Started as root with CHAOS_USER=NAME, the suite copies the binaries
and itself to a fresh root-owned 0755 dir, makes a HOME and a TMPDIR owned by NAME,
and runs itself again as NAME (setpriv: uid, gid, initgroups; a clean environment).
With CHAOS_CONTAIN=cgroup it first delegates a cgroup to NAME the way systemd does: a
child `chaos-NAME-<hex>` of its own cgroup (cgroup2 mount and own path read from
/proc/self/mounts and /proc/self/cgroup), with the dir and its cgroup.procs,
cgroup.subtree_control and cgroup.threads chowned to NAME; the driver is moved into
it as root before it drops privileges. Afterwards every process and cgroup left in
there is a failure; they are killed and removed, and so is the delegated cgroup.
CHAOS_USER naming the current user just runs the suite.

Perturbations: `silent` keeps 1-4 control clients connected to the supervisor's
socket that never send a byte; `drip` keeps one that sends a byte (no newline)
every 100 ms. Both reconnect whenever the supervisor drops them, so the pressure
lasts the whole iteration. `wipe` removes the state dir (`shutil.rmtree`) at a
random moment while the server is ready; the supervisor must re-register (status
finds it live, `up` attaches to it) before the iteration goes on.

Nothing is judged before the fact. Each PID is pinned with a pidfd the moment it
is learned (from the record, from `up --json`, from the server's log, which lives
outside the state dir so that a wipe cannot lose it), and every wait is on an event
with a deadline: a pidfd, a process's exit, an inotify event in the state or log
dir. `time.sleep` only picks the random moments. When ocwrap itself was killed, the
suite waits on its pidfd until it has exited, then runs one ordinary command
(`status --json`, `stop`, `release`, or a new `up` with a fresh owner); that
command must have removed the dead registration and the leftovers of its tree.
No manual `gc`.

After each iteration: every process of the iteration's trees is gone, the
supervisor is gone (within --grace + CHAOS_REACT_SLACK of its owner's death when
it was not the victim), `status --json` shows nothing live under the name, no
`port-P.json`, `.lock` or `.sock` is left, nothing the iteration started still
runs (every such process carries the iteration's CHAOS_TOKEN), and the decoys are
alive. At the end the decoy server still answers on its port.

Prints its seed first; a failure names the iteration, victim, phase, perturbation
and seed, and the command line that replays it.
"""

import ctypes
import json
import os
import posixpath
import pwd
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

VICTIMS = ("owner", "ocwrap", "server", "caller")
PHASES = ("starting", "ready", "tearing down")
PERTURBATIONS = ("none", "silent", "drip", "wipe")
NEXT_COMMANDS = ("status", "stop", "release", "up")
CONTAIN_MODES = ("auto", "cgroup", "group")

GRACE = 0.3  # the --grace of every supervisor the suite starts
DEADLINE = 20.0  # the longest any single wait may take
# After the command that must have swept a dead supervisor returns, its SIGKILLed
# leftovers die within milliseconds; this only absorbs a loaded machine.
AFTER_SWEEP = 5.0
# While waiting for re-registration, `status` is asked again on every inotify event
# and at least this often: taking a lock makes no inotify event.
RECHECK = 0.2


class Failure(Exception):
    pass


class Usage(Exception):
    pass


def choices(var, allowed):
    raw = os.environ.get(var, "")
    picked = tuple(dict.fromkeys(w.strip() for w in raw.split(",") if w.strip())) or allowed
    unknown = [w for w in picked if w not in allowed]
    if unknown:
        raise Usage(f"{var}: unknown {', '.join(unknown)} (choose from {','.join(allowed)})")
    return picked


def configure(argv):
    global BIN, OCWRAP, FIXTURE, ITERATIONS, SEED, SEL_VICTIMS, SEL_PERTURB, FIRST
    global MAX_FAILURES, REACT_SLACK, CONTAIN, USER
    if len(argv) < 2 or len(argv) > 4:
        raise Usage("usage: python3 shell/chaos.py BIN_DIR [ITERATIONS] [SEED]")
    BIN = os.path.abspath(argv[1])
    OCWRAP = os.path.join(BIN, "ocwrap")
    FIXTURE = os.path.join(BIN, "ocwrap-fixture")
    try:
        ITERATIONS = int(argv[2]) if len(argv) > 2 else 200
        SEED = int(argv[3]) if len(argv) > 3 else random.SystemRandom().randrange(1 << 32)
        FIRST = int(os.environ.get("CHAOS_FROM", "0"))
        MAX_FAILURES = max(1, int(os.environ.get("CHAOS_MAX_FAILURES", "1")))
        REACT_SLACK = float(os.environ.get("CHAOS_REACT_SLACK", "10"))
    except ValueError as e:
        raise Usage(str(e)) from None
    SEL_VICTIMS = choices("CHAOS_VICTIMS", VICTIMS)
    SEL_PERTURB = choices("CHAOS_PERTURB", PERTURBATIONS)
    CONTAIN = os.environ.get("CHAOS_CONTAIN", "").strip() or "auto"
    if CONTAIN not in CONTAIN_MODES:
        raise Usage(f"CHAOS_CONTAIN: unknown {CONTAIN} (choose from {'|'.join(CONTAIN_MODES)})")
    USER = os.environ.get("CHAOS_USER", "").strip() or None
    if USER is not None:
        try:
            pwd.getpwnam(USER)
        except KeyError:
            raise Usage(f"CHAOS_USER: no user {USER}") from None
    for exe in (OCWRAP, FIXTURE):
        if not os.access(exe, os.X_OK):
            raise Usage(f"{exe} is not an executable (build first: cargo build)")


# --- waiting on events --------------------------------------------------------


def readable(fds, timeout):
    """The fds of `fds` readable within `timeout` seconds (poll: no FD_SETSIZE limit)."""
    poller = select.poll()
    for fd in fds:
        if fd is not None:
            poller.register(fd, select.POLLIN)
    return {fd for fd, _ in poller.poll(max(0, int(timeout * 1000 + 0.999)))}


_libc = ctypes.CDLL(None, use_errno=True)
IN_MASK = (
    0x002  # IN_MODIFY: a log line, a record rewritten in place
    | 0x004  # IN_ATTRIB
    | 0x008  # IN_CLOSE_WRITE
    | 0x040  # IN_MOVED_FROM
    | 0x080  # IN_MOVED_TO: a record renamed into place
    | 0x100  # IN_CREATE: a lock, socket, record, or the state dir itself
    | 0x200  # IN_DELETE
    | 0x400  # IN_DELETE_SELF
    | 0x800  # IN_MOVE_SELF
)


class Changes:
    """inotify on the suite's directories: wakes a wait when a record, lock, socket
    or log line appears or goes. A watched dir that is removed (a wipe) is watched
    again once its parent reports it back."""

    def __init__(self, dirs):
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs = [os.fsencode(d) for d in dirs]
        self.arm()

    def arm(self):
        for d in self.dirs:
            _libc.inotify_add_watch(self.fd, d, IN_MASK)  # ENOENT while wiped: fine

    def drain(self):
        try:
            while os.read(self.fd, 1 << 16):
                pass
        except BlockingIOError:
            pass
        self.arm()


def wait_until(what, condition, timeout, fds=(), recheck=None):
    """Re-evaluates `condition` on each inotify event or readable fd in `fds` (each
    must be part of the condition) and, with `recheck`, at least that often; returns
    its first true value, or fails after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        left = end - time.monotonic()
        if left <= 0:
            raise Failure(f"{what}: not within {timeout:g} s")
        readable([CHANGES.fd, *fds], min(left, recheck) if recheck else left)
        CHANGES.drain()


# --- cgroups --------------------------------------------------------------------


def unescape_mount(field):
    """/proc/self/mounts writes space, tab, newline and backslash as \\ooo octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def proc_cgroup(pid="self"):
    """The cgroup v2 path of pid as /proc names it (`0::/path`), or None."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return next((line[3:].rstrip("\n") for line in f if line.startswith("0::")), None)
    except OSError:
        return None


def own_cgroup():
    """(mount, path, dir) of this process's cgroup v2, or None: the cgroup2 mount
    from /proc/self/mounts that holds the path /proc/self/cgroup names, as ocwrap
    finds them (never a fixed path)."""
    path = proc_cgroup()
    try:
        with open("/proc/self/mounts") as f:
            mounts = [unescape_mount(w[1]) for w in map(str.split, f) if len(w) > 2 and w[2] == "cgroup2"]
    except OSError:
        return None
    if path is None:
        return None
    for mount in mounts:
        where = os.path.normpath(os.path.join(mount, path.lstrip("/")))
        if os.path.isfile(os.path.join(where, "cgroup.procs")):
            return mount, path, where
    return None


def cgroup_members(where):
    try:
        with open(os.path.join(where, "cgroup.procs")) as f:
            return [int(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def wait_cgroup_empty(where, timeout):
    """Whether `where` reports `populated 0` within `timeout` s: cgroup.events is
    re-read on each change, which the kernel announces with POLLPRI."""
    fd = os.open(os.path.join(where, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI | select.POLLERR)
        end = time.monotonic() + timeout
        while True:
            events = dict(line.split() for line in os.pread(fd, 4096, 0).decode().splitlines())
            if events.get("populated") == "0":
                return True
            left = end - time.monotonic()
            if left <= 0:
                return False
            poller.poll(int(left * 1000) + 1)
    finally:
        os.close(fd)


# --- processes ----------------------------------------------------------------


def proc_stat(pid):
    """(state, start time) of pid, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def proc_bytes(pid, what):
    try:
        with open(f"/proc/{pid}/{what}", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


class Pinned:
    """A process pinned by a pidfd from the moment its PID was learned, so that no
    kill or wait can reach a process that reused the PID. Gone means exited, a
    zombie included: that is what a pidfd's poll reports."""

    def __init__(self, pid, label):
        self.pid, self.label = pid, label
        try:
            self.fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self.fd = None

    def exited(self):
        return self.fd is None or bool(readable([self.fd], 0))

    def wait_gone(self, deadline):
        return self.fd is None or bool(readable([self.fd], max(0.0, deadline - time.monotonic())))

    def kill(self):
        if self.fd is not None:
            try:
                signal.pidfd_send_signal(self.fd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __str__(self):
        return f"{self.label} {self.pid}"


def pin(pid, label, is_ours):
    """Pins pid, then checks (once pinned) that it is the process meant: a PID that
    now names a stranger is dropped (None), never signalled. One that has already
    exited is kept: it is gone, which is all the suite asks of it."""
    p = Pinned(pid, label)
    if p.exited() or is_ours(pid) or p.exited():
        return p
    p.close()
    return None


def kill_and_reap(popen, pinned):
    pinned.kill()
    try:
        popen.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        print(f"chaos: warning: {pinned} did not exit after SIGKILL", flush=True)
    pinned.close()


def token_holders(token):
    """Live processes whose environment carries `token` (everything an iteration
    started, down to the grandchildren of its servers), pinned and checked again."""
    entry = token.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        if entry in proc_bytes(pid, "environ"):
            p = pin(pid, "process", lambda q: entry in proc_bytes(q, "environ"))
            if p is not None and not p.exited():
                cmd = b" ".join(proc_bytes(pid, "cmdline")).decode(errors="replace").strip()
                p.label = f"process ({cmd[:120]})"
                found.append(p)
            elif p is not None:
                p.close()
    return found


# --- ocwrap and its state dir ---------------------------------------------------


def ocwrap(env, *args, timeout=DEADLINE):
    try:
        return subprocess.run(
            [OCWRAP, *args, "--state-dir", STATE],
            capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise Failure(f"`ocwrap {' '.join(args)}` did not return within {timeout:g} s") from None


def parse(what, out):
    try:
        return json.loads(out.stdout)
    except ValueError:
        err = out.stderr.strip()
        raise Failure(f"{what} printed {out.stdout!r} (exit {out.returncode}, stderr {err!r})") from None


def status(env):
    out = ocwrap(env, "status", "--json")
    answer = parse("status --json", out)
    try:
        return {e["name"]: e for e in answer["supervisors"]}
    except (KeyError, TypeError):
        raise Failure(f"status --json printed {out.stdout!r}") from None


def read_record(name):
    try:
        with open(os.path.join(STATE, f"{name}.json")) as f:
            record = json.load(f)
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None


def read_claim(name):
    """The claim a supervisor writes into its lock file before it starts anything:
    (pid, start time), or None."""
    try:
        with open(os.path.join(STATE, f"{name}.lock")) as f:
            pid, dot, start = f.readline().strip().partition(".")
        return (int(pid), int(start)) if dot else None
    except (OSError, ValueError):
        return None


def up_command(port, owner_pid, log, fixture_args):
    return [
        OCWRAP, "up", "-v", "--json", "--state-dir", STATE, "--port", str(port),
        "--owner-pid", str(owner_pid), "--grace", f"{int(GRACE * 1000)}ms",
        "--ready-timeout", "10s", "--contain", CONTAIN, "--log", log, "--", FIXTURE, *fixture_args,
    ]


class Tree:
    """One supervisor and the server tree it announced in its log."""

    def __init__(self, name, log):
        self.name, self.log = name, log
        self.sup = None
        self.marker = None  # OCWRAP_TREE=<supervisor pid>.<start>, once known
        self.server = None
        self.members = []  # Pinned: server, child, escapee
        self.record = None  # the last record learned
        self.seen = set()

    def learn_supervisor(self, pid, start=None):
        if self.sup is not None or not isinstance(pid, int):
            return

        def is_it(q):
            st = proc_stat(q)
            argv = proc_bytes(q, "cmdline")
            if st is None or (start is not None and st[1] != start):
                return False
            # `up` starts `ocwrap __supervise` (its config comes over a pipe).
            return b"__supervise" in argv

        self.sup = pin(pid, "supervisor", is_it)
        if start is None and self.sup is not None and not self.sup.exited():
            st = proc_stat(pid)
            start = st[1] if st else None
        if start is not None:
            self.marker = f"OCWRAP_TREE={pid}.{start}".encode()

    def is_member(self, pid, start=None):
        st = proc_stat(pid)
        if st is None or (start is not None and st[1] != start):
            return False
        if self.marker is not None:
            return self.marker in proc_bytes(pid, "environ")
        try:
            return os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(FIXTURE)
        except OSError:
            return False

    def learn_member(self, pid, label, start=None):
        if pid in self.seen:
            return
        self.seen.add(pid)
        p = pin(pid, label, lambda q: self.is_member(q, start))
        if p is not None:
            self.members.append(p)
            if label == "server" and self.server is None:
                self.server = p

    def learn_record(self, record):
        self.record = record
        try:
            self.learn_supervisor(record["supervisor"]["pid"], record["supervisor"]["start"])
            self.learn_member(record["server"]["pid"], "server", record["server"]["start"])
        except (KeyError, TypeError):
            raise Failure(f"unexpected record {record!r}") from None

    def learn_answer(self, answer):
        record = read_record(self.name)
        if record and record.get("supervisor", {}).get("pid") == answer.get("supervisor_pid"):
            self.learn_record(record)
        self.learn_supervisor(answer.get("supervisor_pid"))
        if isinstance(answer.get("pid"), int):
            self.learn_member(answer["pid"], "server")

    def learn_log(self):
        """Pins every PID the fixture has announced so far (`server|child|escapee PID`)."""
        try:
            with open(self.log, errors="replace") as f:
                lines = f.readlines()
        except OSError:
            return
        for line in lines:
            words = line.split()
            if len(words) >= 2 and words[0] in ("server", "child", "escapee") and words[1].isdigit():
                self.learn_member(int(words[1]), words[0])

    def require_whole(self):
        """Once `up` reported ready, the log names the whole tree (the fixture announces
        every process before it listens): without that every later check would be empty."""
        self.learn_log()
        labels = sorted({p.label for p in self.members})
        if labels != ["child", "escapee", "server"]:
            pinned = [str(p) for p in self.members]
            raise Failure(f"{self.log} names only {labels} of the tree (pinned: {pinned})")

    def check_containment(self, record=None):
        """The containment asked for (CHAOS_CONTAIN) is the one in use: the record
        says it, and the server (while it runs) is in the cgroup it implies."""
        if self.marker is None:
            return
        value = self.marker.split(b"=", 1)[1].decode()
        own_path, own_dir = OWN_CGROUP[1:] if OWN_CGROUP else (None, None)
        if record is not None:
            kind, path = record.get("contain"), record.get("cgroup")
            if kind not in ("cgroup", "group") or CONTAIN != "auto" and kind != CONTAIN:
                raise Failure(f"with --contain {CONTAIN} the record of {self.sup} says contain {kind!r}")
            expected = os.path.join(own_dir or "?", f"ocwrap-{value}")
            if kind == "cgroup" and (not isinstance(path, str) or os.path.normpath(path) != expected):
                raise Failure(f"the record of {self.sup} names cgroup {path!r}, not ocwrap-{value} in {own_dir}")
            if kind == "group" and path is not None:
                raise Failure(f"the record of {self.sup} says contain group but names cgroup {path!r}")
            kind_in_use = kind
        else:
            kind_in_use = CONTAIN
        server = self.server
        if own_path is None or server is None or kind_in_use == "auto":
            return
        where = proc_cgroup(server.pid)
        if where is None or server.exited():
            return  # gone meanwhile: nothing to judge
        expected = own_path if kind_in_use == "group" else posixpath.join(own_path, f"ocwrap-{value}")
        if where != expected:
            raise Failure(f"with --contain {CONTAIN} {server} is in cgroup {where}, not {expected}")

    def pinned(self):
        return ([self.sup] if self.sup else []) + self.members


# --- control-socket perturbations -------------------------------------------------


class Pests:
    """Control clients that never finish a request: `silent` ones connect and send
    nothing, a `drip` one sends one byte (no newline) every 100 ms. Whenever the
    supervisor drops one (or is not listening), it connects again on the next tick,
    so the pressure lasts the whole iteration. A failing connect is skipped."""

    totals = {"connections": 0, "dropped by a supervisor": 0, "bytes dripped": 0}

    def __init__(self, path, silent, drip):
        self.path = path
        self.slots = [["silent", None] for _ in range(silent)] + ([["drip", None]] if drip else [])
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.wait(0.1):
            self.tick()

    def tick(self):
        with self.lock:
            for slot in self.slots:
                kind, s = slot
                if s is None:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
                    try:
                        s.connect(self.path)
                    except OSError:  # not there yet, nobody listening, backlog full
                        s.close()
                        continue
                    slot[1] = s
                    Pests.totals["connections"] += 1
                try:
                    if s.recv(4096, socket.MSG_DONTWAIT) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                except OSError:
                    s.close()
                    slot[1] = None
                    Pests.totals["dropped by a supervisor"] += 1
                    continue
                if kind == "drip":
                    try:
                        sent = s.send(b"x", socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
                        Pests.totals["bytes dripped"] += sent
                    except BlockingIOError:
                        pass
                    except OSError:
                        s.close()
                        slot[1] = None
                        Pests.totals["dropped by a supervisor"] += 1

    def close(self):
        self.stop.set()
        self.thread.join(timeout=DEADLINE)
        with self.lock:
            for slot in self.slots:
                if slot[1] is not None:
                    slot[1].close()
                    slot[1] = None


# --- one iteration ----------------------------------------------------------------


class Plan:
    """Everything random about one iteration, drawn up front in a fixed order so
    that a seed replays the same plans whatever happened at run time."""

    def __init__(self, rng):
        self.victim = rng.choice(SEL_VICTIMS)
        only_wipe = SEL_PERTURB == ("wipe",)
        self.phase = rng.choice(PHASES[1:] if only_wipe else PHASES)
        # A wipe hits a ready server, so it does not combine with `starting`.
        self.perturb = rng.choice([p for p in SEL_PERTURB if p != "wipe" or self.phase != "starting"])
        self.silent = rng.randint(1, 4)
        self.listen_after = rng.randint(50, 200)
        self.kill_delay = rng.uniform(0, 0.25 if self.phase == "tearing down" else 0.05)
        self.wipe_delay = rng.uniform(0, 0.05)
        self.next = rng.choice(NEXT_COMMANDS)

    def perturbation(self):
        return f"silent x{self.silent}" if self.perturb == "silent" else self.perturb

    def __str__(self):
        text = f"victim {self.victim}, phase {self.phase}, perturbation {self.perturbation()}"
        if self.victim == "ocwrap":
            text += f", next command {self.next}"
        return text


class Iteration:
    def __init__(self, index, plan, decoys):
        self.i, self.plan, self.decoys = index, plan, decoys
        self.port = new_port()
        self.name = f"port-{self.port}"
        self.token = f"CHAOS_TOKEN={RUN_ID}.{index}"
        self.env = dict(BASE_ENV, CHAOS_TOKEN=f"{RUN_ID}.{index}")
        self.children = []  # (Popen, Pinned): everything this iteration spawned itself
        self.trees = []
        self.pests = None
        self.owner_killed_at = None
        self.sup_alive_at_owner_kill = False
        self.reaction = None
        self.rereg = None

    def spawn(self, argv, label, stdout=subprocess.DEVNULL):
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.DEVNULL,
            env=self.env, text=stdout is subprocess.PIPE,
        )
        pinned = Pinned(popen.pid, label)  # our unreaped child: no race
        self.children.append((popen, pinned))
        return popen, pinned

    def new_tree(self, suffix=""):
        tree = Tree(self.name, os.path.join(LOGS, f"{self.i}-{self.name}{suffix}.log"))
        self.trees.append(tree)
        return tree

    def answer(self, popen, what):
        """Waits for an `up` we spawned to exit and parses its one JSON line."""
        try:
            out, _ = popen.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            raise Failure(f"{what} did not return within {DEADLINE:g} s") from None
        try:
            return json.loads(out)
        except ValueError:
            raise Failure(f"{what} printed {out!r} (exit {popen.returncode})") from None

    def kill_owner(self):
        if self.owner_killed_at is None:
            self.owner_pin.kill()
            self.owner_killed_at = time.monotonic()
            self.sup_alive_at_owner_kill = self.tree.sup is not None and not self.tree.sup.exited()

    def run(self):
        plan = self.plan
        self.owner, self.owner_pin = self.spawn([FIXTURE, "sleep"], "owner")
        if plan.perturb in ("silent", "drip"):
            sock = os.path.join(STATE, f"{self.name}.sock")
            silent = plan.silent if plan.perturb == "silent" else 0
            self.pests = Pests(sock, silent, drip=plan.perturb == "drip")
        fixture = ["tree", "--listen", str(self.port), "--children", "1", "--escape"]
        if plan.phase == "starting":
            fixture += ["--listen-after", str(plan.listen_after)]
        if plan.phase == "tearing down":
            fixture += ["--ignore-term"]
        tree = self.tree = self.new_tree()
        caller, caller_pin = self.spawn(
            up_command(self.port, self.owner.pid, tree.log, fixture), "up caller", subprocess.PIPE
        )

        if plan.phase == "starting":
            # A random moment after the supervisor has registered (its claim is in
            # the lock file; the record comes only once the server is ready) and
            # its server has said who it is, while the server starts.
            def registered():
                if caller_pin.exited():
                    return True
                claim = read_claim(self.name)
                if claim is None:
                    return None
                tree.learn_supervisor(*claim)
                tree.learn_log()
                return tree.server is not None and claim
            found = wait_until(
                "the supervisor registers and its server starts", registered, DEADLINE, [caller_pin.fd],
            )
            if found is True:
                raise Failure(f"up exited before its supervisor registered: {self.answer(caller, 'up')}")
            tree.check_containment()
            if self.pests:
                self.pests.tick()
            time.sleep(plan.kill_delay)
        else:
            answer = self.answer(caller, "up")
            if answer.get("status") != "started":
                raise Failure(f"up answered {answer}")
            tree.learn_answer(answer)
            tree.require_whole()
            if tree.record is None:
                raise Failure(f"up answered {answer}, but {self.name}.json is not that supervisor's record")
            tree.check_containment(tree.record)
            if self.pests:
                self.pests.tick()
            if plan.perturb == "wipe":
                time.sleep(plan.wipe_delay)
                self.wipe(tree, fixture)
            if plan.phase == "tearing down":
                self.kill_owner()  # teardown begins; the tree ignores SIGTERM for the grace
            if plan.victim == "caller":
                # The first caller has answered; the victim is a second one, attaching.
                log = os.path.join(LOGS, f"{self.i}-{self.name}-caller.log")
                caller, caller_pin = self.spawn(
                    up_command(self.port, self.owner.pid, log, fixture),
                    "attaching up caller",
                    subprocess.PIPE,
                )
            time.sleep(plan.kill_delay)
        tree.learn_log()
        if tree.sup is None:
            raise Failure("the supervisor's PID names another process (cannot pin it)")

        victim = {
            "owner": self.owner_pin, "ocwrap": tree.sup, "server": tree.server, "caller": caller_pin,
        }[plan.victim]
        if plan.victim == "owner":
            self.kill_owner()
        elif victim is not None:
            victim.kill()

        if plan.victim == "ocwrap" and tree.sup is not None:
            # Never judge before the fact: it must have exited (a zombie counts).
            if not tree.sup.wait_gone(time.monotonic() + DEADLINE):
                raise Failure(f"{tree.sup} still runs {DEADLINE:g} s after its SIGKILL")
            if tree.server is not None and not tree.server.wait_gone(time.monotonic() + DEADLINE):
                raise Failure(f"{tree.server} outlived its SIGKILLed supervisor (parent-death signal)")
        # End the iteration the normal way: the owner goes, the caller returns.
        self.kill_owner()
        try:
            caller.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            raise Failure(f"the {caller_pin.label} did not return within {DEADLINE:g} s") from None

        if plan.victim == "ocwrap":
            tree.learn_log()
            self.next_command(tree)
        else:
            self.judge_reaction(
                tree, self.owner_killed_at, self.sup_alive_at_owner_kill, "its owner's SIGKILL"
            )
            tree.learn_log()
            self.judge_gone(tree, "after its owner died", DEADLINE)
        self.judge_state()

    def wipe(self, tree, fixture):
        """rm -rf of the state dir under a ready supervisor, which must re-register:
        live in `status`, its own record and socket back, and `up` attaching to it."""
        sup = tree.sup
        wiped_at = time.monotonic()
        shutil.rmtree(STATE, ignore_errors=True)

        def registered():
            if sup.exited():
                raise Failure(f"{sup} exited after its state dir was wiped")
            entry = status(self.env).get(self.name)
            if not entry or not entry.get("live"):
                return None
            holder = ((entry.get("record") or {}).get("supervisor") or {}).get("pid")
            if holder is not None and holder != sup.pid:
                raise Failure(f"after the wipe {self.name} is held by supervisor {holder}, not {sup.pid}")
            return holder is not None and os.path.lexists(os.path.join(STATE, f"{self.name}.sock"))

        what = f"{self.name} live again in `status --json` after its state dir was wiped"
        wait_until(what, registered, DEADLINE, [sup.fd], RECHECK)
        self.rereg = time.monotonic() - wiped_at
        record = read_record(self.name)
        if record and (record.get("supervisor") or {}).get("pid") == sup.pid:
            tree.check_containment(record)
        log = os.path.join(LOGS, f"{self.i}-{self.name}-attach.log")
        out = subprocess.run(
            up_command(self.port, self.owner.pid, log, fixture),
            capture_output=True, text=True, timeout=DEADLINE, env=self.env, stdin=subprocess.DEVNULL,
        )
        answer = parse("up after the wipe", out)
        if answer.get("status") != "attached" or answer.get("supervisor_pid") != sup.pid:
            if answer.get("status") == "started":
                self.new_tree("-attach").learn_answer(answer)  # a duplicate: pinned so it is cleaned up
            raise Failure(f"after the wipe and re-registration, up answered {answer}, not attached to {sup}")

    def next_command(self, tree):
        """The first ordinary command after the supervisor's SIGKILL: it must sweep
        the dead registration and the leftovers of its tree."""
        cmd = self.plan.next
        if cmd == "up":
            owner2, owner2_pin = self.spawn([FIXTURE, "sleep"], "second owner")
            tree2 = self.new_tree("-next")
            fixture = ["tree", "--listen", str(self.port), "--children", "1", "--escape"]
            command = up_command(self.port, owner2.pid, tree2.log, fixture)
            up2, _ = self.spawn(command, "next up", subprocess.PIPE)
            answer = self.answer(up2, "the next `up`")
            if answer.get("status") == "started":
                tree2.learn_answer(answer)
                tree2.require_whole()
                tree2.check_containment(tree2.record)
            shown = "up --port P --owner-pid NEW"
        else:
            args = {
                "status": ["status", "--json"],
                "stop": ["stop", "--port", str(self.port)],
                "release": ["release", "--port", str(self.port)],
            }[cmd]
            out = ocwrap(self.env, *args)
            shown = " ".join(args).replace(str(self.port), "P")
            if cmd == "status":
                entries = parse("status --json", out).get("supervisors", [])
                entry = {e.get("name"): e for e in entries}.get(self.name)
                if entry and entry.get("live"):
                    raise Failure(f"status --json shows the SIGKILLed supervisor live: {entry}")
        when = f"after `ocwrap {shown}` (the next command after the supervisor's SIGKILL)"
        self.judge_gone(tree, when, AFTER_SWEEP)
        if cmd == "up":
            if answer.get("status") != "started":
                raise Failure(f"the next `up` answered {answer}, not started")
            killed_at = time.monotonic()
            alive = tree2.sup is not None and not tree2.sup.exited()
            owner2_pin.kill()
            self.judge_reaction(tree2, killed_at, alive, "the second owner's SIGKILL")
            tree2.learn_log()
            self.judge_gone(tree2, "after the second owner died", DEADLINE)

    def judge_reaction(self, tree, killed_at, alive_then, what):
        if tree.sup is None or killed_at is None:
            return
        bound = GRACE + REACT_SLACK
        if not tree.sup.wait_gone(killed_at + bound):
            raise Failure(f"{tree.sup} still runs {bound:g} s after {what} (--grace {GRACE:g}): stalled?")
        if alive_then:
            self.reaction = time.monotonic() - killed_at

    def judge_gone(self, tree, when, timeout):
        deadline = time.monotonic() + timeout
        for p in tree.pinned():
            if not p.wait_gone(deadline):
                raise Failure(f"{p} of {self.name}'s tree still runs {timeout:g} s {when}")

    def judge_state(self):
        files = [f"{self.name}.{ext}" for ext in ("json", "lock", "sock")]
        left = [f for f in files if os.path.lexists(os.path.join(STATE, f))]
        if left:
            raise Failure(f"left in the state dir: {', '.join(left)}")
        entry = status(self.env).get(self.name)
        if entry and entry.get("live"):
            raise Failure(f"status --json shows {self.name} live: {entry}")
        # Anything this iteration started, down to unannounced grandchildren.
        stray = token_holders(self.token)
        try:
            deadline = time.monotonic() + AFTER_SWEEP
            for p in stray:
                if not p.wait_gone(deadline):
                    raise Failure(f"{p}, started by this iteration, still runs")
        finally:
            for p in stray:
                p.close()
        for name, decoy in self.decoys.items():
            if decoy.exited():
                raise Failure(f"decoy {name} ({decoy.pid}) died")

    def cleanup(self):
        """Kills (by pidfd) whatever this iteration started that still runs, so that
        the suite always stops by itself, then closes every pidfd and client."""
        if self.pests:
            self.pests.close()
        for popen, pinned in self.children:
            kill_and_reap(popen, pinned)
        record = read_record(self.name)
        if record:  # whoever holds the name now, in case nobody learned of it
            try:
                self.new_tree("-cleanup").learn_record(record)
            except Failure:
                pass
        for tree in self.trees:
            tree.learn_log()
        strays = token_holders(self.token)
        doomed = [p for tree in self.trees for p in tree.pinned()] + strays
        for p in doomed:
            p.kill()
        deadline = time.monotonic() + DEADLINE
        for p in doomed:
            if not p.wait_gone(deadline):
                print(f"chaos: warning: {p} survived SIGKILL", flush=True)
            p.close()


# --- as another user (CHAOS_USER, started as root) -------------------------------

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def as_user(pw, argv):
    """argv run as the user of `pw` (real and effective uid and gid, its groups)."""
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--", *argv]


def python_for(pw, env):
    """A python3 the user can run, with what the suite needs (pidfds): this one when
    the user can reach it (a pyenv under /root it cannot), else the system's. The
    probe asks the interpreter whether the user can reach its own executable:
    setpriv's exec may find a path the user cannot (it still holds root's
    capabilities during the lookup), and such a python runs with whatever libpython
    the loader finds instead of its own."""
    tried = []
    for python in (sys.executable, shutil.which("python3", path=SYSTEM_PATH)):
        if not python or python in tried:
            continue
        tried.append(python)
        check = "import os, signal, sys; os.pidfd_open; signal.pidfd_send_signal; "
        check += "sys.exit(not os.access(sys.executable, os.X_OK))"
        probe = subprocess.run(
            as_user(pw, [python, "-c", check]),
            env=env, cwd="/", stdin=subprocess.DEVNULL, capture_output=True, timeout=DEADLINE,
        )
        if probe.returncode == 0:
            return python
    raise Failure(f"{pw.pw_name} can run no python3 with pidfds (tried {', '.join(tried)})")


def delegate_cgroup(pw):
    """A child of our own cgroup, delegated to the user as systemd does it: the dir
    and its cgroup.procs, cgroup.subtree_control and cgroup.threads are the user's."""
    found = own_cgroup()
    if found is None:
        raise Failure("--contain cgroup: no cgroup2 mount holds the suite's own cgroup")
    path = os.path.join(found[2], f"chaos-{pw.pw_name}-{os.urandom(4).hex()}")
    try:
        os.mkdir(path)
    except OSError as e:
        raise Failure(f"--contain cgroup: cannot make a cgroup to delegate to {pw.pw_name}: {e}") from None
    try:
        for entry in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
            os.chown(os.path.join(path, entry) if entry else path, pw.pw_uid, pw.pw_gid)
    except OSError as e:
        os.rmdir(path)
        raise Failure(f"--contain cgroup: cannot delegate {path} to {pw.pw_name}: {e}") from None
    return path


def remove_cgroup(path, left):
    """Removes a cgroup of this run and everything below it. Whatever is still in
    there (a cgroup below the delegated one, a process) is appended to `left`, then
    killed: everything in there descends from the driver this run moved in."""
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            left.append(f"cgroup {entry.path}")
            remove_cgroup(entry.path, left)
    members = cgroup_members(path)
    if members:
        cmds = [b" ".join(proc_bytes(pid, "cmdline")).decode(errors="replace").strip()[:120] for pid in members]
        left.append(f"processes in {path}: " + "; ".join(f"{p} ({c})" for p, c in zip(members, cmds)))
        if os.path.exists(os.path.join(path, "cgroup.kill")):
            with open(os.path.join(path, "cgroup.kill"), "w") as f:
                f.write("1")
        else:  # Linux < 5.14: one by one, each pinned and found in there once pinned
            for pid in members:
                p = pin(pid, "process", lambda q: q in cgroup_members(path))
                if p is not None:
                    p.kill()
                    p.close()
        if not wait_cgroup_empty(path, DEADLINE):
            left.append(f"{path} still populated {DEADLINE:g} s after SIGKILL")
    try:
        os.rmdir(path)
    except OSError as e:
        left.append(f"{path} could not be removed ({e})")


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def run_as(user):
    """Root's part of CHAOS_USER: the binaries and the suite copied where the user can
    run them (root-owned, 0755), a HOME and TMPDIR of its own, with --contain cgroup
    a delegated cgroup the driver is moved into before it drops privileges; then
    the suite as that user, and everything removed again (the dir kept on failure)."""
    pw = pwd.getpwnam(user)
    if shutil.which("setpriv") is None:
        print("chaos: FAILED before the iterations: CHAOS_USER needs setpriv (util-linux)", flush=True)
        return 1
    top = tempfile.mkdtemp(prefix=f"ocwrap-chaos-{user}-")
    os.chmod(top, 0o755)
    bindir, home, tmp = (os.path.join(top, d) for d in ("bin", "home", "tmp"))
    os.mkdir(bindir)
    os.chmod(bindir, 0o755)
    for exe in (OCWRAP, FIXTURE):
        os.chmod(shutil.copy(exe, bindir), 0o755)
    script = shutil.copy(os.path.abspath(__file__), bindir)
    os.chmod(script, 0o644)
    for d in (home, tmp):
        os.mkdir(d, 0o700)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    env = {
        "PATH": SYSTEM_PATH, "HOME": home, "TMPDIR": tmp, "USER": user, "LOGNAME": user,
        "SHELL": "/bin/sh", "LANG": "C.UTF-8",
    }
    env.update((k, v) for k, v in os.environ.items() if k.startswith("CHAOS_") and k != "CHAOS_TOKEN")
    env["CHAOS_REPLAY_BIN"] = REPLAY_BIN
    cgroup, left, rc = None, [], 1
    try:
        python = python_for(pw, env)
        if CONTAIN == "cgroup":
            cgroup = delegate_cgroup(pw)
        procs = os.path.join(cgroup, "cgroup.procs") if cgroup else None

        def enter_cgroup():  # in the child, still root: the move needs the common ancestor
            fd = os.open(procs, os.O_WRONLY)
            os.write(fd, b"0")
            os.close(fd)

        print(f"chaos: seed {SEED}: as {user} (uid {pw.pw_uid}, gid {pw.pw_gid}, {python}), "
              f"binaries copied to {bindir}, HOME and TMPDIR in {top}"
              + (f", cgroup {cgroup} delegated to {user}" if cgroup else ""), flush=True)
        driver = subprocess.Popen(
            as_user(pw, [python, script, bindir, str(ITERATIONS), str(SEED)]),
            env=env, cwd=home, stdin=subprocess.DEVNULL, preexec_fn=enter_cgroup if cgroup else None,
        )
        try:
            rc = driver.wait()
        except KeyboardInterrupt:  # the driver, in our process group, has it too
            rc = driver.wait()
            raise
    except Failure as e:
        print(f"chaos: FAILED before the iterations: {e}", flush=True)
    finally:
        if cgroup:
            remove_cgroup(cgroup, left)
    for what in left:
        print(f"chaos: FAILED: left behind by the run as {user}: {what}", flush=True)
    if rc == 0 and not left:
        shutil.rmtree(top, ignore_errors=True)
        return 0
    print(f"chaos: the run as {user} kept {top}", flush=True)
    return rc or 1


# --- the run --------------------------------------------------------------------


def new_port():
    """A port no iteration has used, outside the kernel's ephemeral range (so no
    other program's bind(0) or connect can take it meanwhile), free right now."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    pool = [p for p in range(10000, 32000) if not low <= p <= high]
    while True:
        port = PORT_RNG.choice(pool) if len(pool) > 1000 else 0
        if port in USED_PORTS:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in USED_PORTS:
            USED_PORTS.add(port)
            return port


def start_decoys():
    port = new_port()
    env = dict(BASE_ENV, CHAOS_TOKEN=f"{RUN_ID}.decoy")
    hand = subprocess.Popen(
        [FIXTURE, "tree", "--listen", str(port)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env
    )
    other = subprocess.Popen([FIXTURE, "sleep"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
    procs = [(hand, Pinned(hand.pid, "hand-started server")), (other, Pinned(other.pid, "unrelated process"))]
    seen, end = b"", time.monotonic() + DEADLINE
    while f"listening {port}".encode() not in seen:
        left = end - time.monotonic()
        if left <= 0 or not readable([hand.stdout.fileno()], left):
            raise Failure("the hand-started decoy server did not listen")
        chunk = os.read(hand.stdout.fileno(), 4096)
        if not chunk:
            raise Failure(f"the hand-started decoy server exited: {seen!r}")
        seen += chunk
    return port, procs


def summary(counts, nexts, reactions, rereg):
    for (victim, phase, perturb), n in sorted(counts.items()):
        line = f"chaos:   {victim:>6} killed while {phase:<12} perturbation {perturb:<6}: {n:3}"
        if victim == "ocwrap":
            by = nexts.get((phase, perturb), {})
            line += "   (next: " + ", ".join(f"{c} {k}" for c, k in sorted(by.items())) + ")"
        print(line)
    if reactions:
        median = statistics.median(reactions) * 1000
        print(f"chaos: owner SIGKILL -> supervisor gone: median {median:.0f} ms, "
              f"max {max(reactions) * 1000:.0f} ms (bound {GRACE + REACT_SLACK:g} s)")
    if rereg:
        print(f"chaos: state dir wiped {len(rereg)} times; live again after median "
              f"{statistics.median(rereg) * 1000:.0f} ms, max {max(rereg) * 1000:.0f} ms")
    if any(Pests.totals.values()):
        print("chaos: control-socket pests: " + ", ".join(f"{n} {k}" for k, n in Pests.totals.items()))


def main(argv):
    global STATE, LOGS, CHANGES, RUN_ID, BASE_ENV, PORT_RNG, USED_PORTS, OWN_CGROUP, REPLAY_BIN
    try:
        configure(argv)
        me = os.geteuid()
        if USER is not None and pwd.getpwnam(USER).pw_uid != me and me != 0:
            raise Usage(f"CHAOS_USER={USER}: only root can run the suite as another user")
    except Usage as e:
        print(f"chaos: {e}", file=sys.stderr)
        return 2
    REPLAY_BIN = os.environ.get("CHAOS_REPLAY_BIN") or BIN
    if USER is not None and pwd.getpwnam(USER).pw_uid != me:
        return run_as(USER)
    OWN_CGROUP = own_cgroup()
    writable = OWN_CGROUP and os.access(os.path.join(OWN_CGROUP[2], "cgroup.procs"), os.W_OK)
    if CONTAIN == "cgroup" and not writable:
        where = f"{OWN_CGROUP[2]} is not writable" if OWN_CGROUP else "no cgroup v2 holds the suite"
        print(f"chaos: FAILED before the iterations: CHAOS_CONTAIN=cgroup needs a cgroup the suite "
              f"can write ({where}; as another user, start it as root with CHAOS_USER)", flush=True)
        return 1
    root = tempfile.mkdtemp(prefix="ocwrap-chaos-")
    STATE, LOGS = os.path.join(root, "state"), os.path.join(root, "logs")
    os.makedirs(LOGS)
    CHANGES = Changes([root, STATE, LOGS])
    RUN_ID = os.urandom(6).hex()
    BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OCWRAP_", "CHAOS_TOKEN"))}
    PORT_RNG = random.Random(SEED ^ 0x5EED)
    USED_PORTS = set()
    print(f"chaos: seed {SEED}, {ITERATIONS} iterations, victims {','.join(SEL_VICTIMS)}, "
          f"perturbations {','.join(SEL_PERTURB)}, dir {root}", flush=True)
    cgroup_dir = OWN_CGROUP[2] if OWN_CGROUP else None
    delegated = cgroup_dir is not None and me != 0 and os.stat(cgroup_dir).st_uid == me
    print(f"chaos: mode: --contain {CONTAIN}, as {user_name(me)} (uid {me}), in cgroup "
          f"{cgroup_dir or '(none: no cgroup v2)'}{' (delegated to this user)' if delegated else ''}", flush=True)
    rng = random.Random(SEED)
    counts, nexts, reactions, rereg = {}, {}, [], []
    passed = failed = 0
    began = time.monotonic()
    decoy_procs = []
    try:
        decoy_port, decoy_procs = start_decoys()
        decoys = {p.label: p for _, p in decoy_procs}
        for i in range(ITERATIONS):
            plan = Plan(rng)
            if i < FIRST:
                continue
            it = Iteration(i, plan, decoys)
            try:
                it.run()
            except (Failure, subprocess.TimeoutExpired) as e:
                failed += 1
                print(f"chaos: FAILED iteration {i} ({plan}; seed {SEED}): {e}", flush=True)
                mode = f"CHAOS_CONTAIN={CONTAIN} " + (f"CHAOS_USER={USER} " if USER else "")
                print(f"chaos:   replay: {mode}CHAOS_VICTIMS={','.join(SEL_VICTIMS)} "
                      f"CHAOS_PERTURB={','.join(SEL_PERTURB)} CHAOS_FROM={i} "
                      f"python3 shell/chaos.py {REPLAY_BIN} {i + 1} {SEED}", flush=True)
                if failed >= MAX_FAILURES:
                    break
                continue
            finally:
                it.cleanup()
            passed += 1
            key = (plan.victim, plan.phase, plan.perturbation())
            counts[key] = counts.get(key, 0) + 1
            if plan.victim == "ocwrap":
                by = nexts.setdefault((plan.phase, plan.perturbation()), {})
                by[plan.next] = by.get(plan.next, 0) + 1
            if it.reaction is not None:
                reactions.append(it.reaction)
            if it.rereg is not None:
                rereg.append(it.rereg)
        else:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", decoy_port)) != 0:
                    print("chaos: FAILED: the hand-started decoy server stopped answering", flush=True)
                    failed += 1
    except Failure as e:
        print(f"chaos: FAILED before the iterations: {e}", flush=True)
        failed += 1
    finally:
        for popen, pinned in decoy_procs:
            kill_and_reap(popen, pinned)
        os.close(CHANGES.fd)
    took = time.monotonic() - began
    summary(counts, nexts, reactions, rereg)
    if failed == 0:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"chaos: logs and state kept in {root}")
    print(f"chaos: {passed} passed, {failed} failed ({took:.0f} s, seed {SEED}, --contain {CONTAIN}, "
          f"as {user_name(me)})", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
