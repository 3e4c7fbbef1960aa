"""ocwrap benchmarks, printed as one markdown report.

B1 launch overhead: `ocwrap -- true` (each containment) beside `true`,
   `setsid -w true`, `tini -s -- true`, `dumb-init true` (hyperfine); then ocwrap
   and `setsid -w true` again with 1,000 idle host processes that the bench starts.
B2 teardown latency: owner SIGKILL -> every process of a 4-process tree (server,
   two grandchildren, one setsid escapee) gone, watched through pidfds: each
   containment with 0 and 1,000 idle host processes; then the poll watch method
   and a server that ignores SIGTERM (--grace 1s).
B3 idle cost: RSS, CPU time and context switches over 30 s of idling, for ocwrap,
   tini and dumb-init each holding the same fixture server.
B4 readiness: from the port accepting to `ocwrap up` returning, beside a 250 ms
   polling loop (what plugins do today).
B5 contention: 128 concurrent `ocwrap up` for one port: wall time, servers started.
B6 tree size: owner SIGKILL -> a tree of 10 / 100 / 1,000 processes and ocwrap
   all gone (every one holds ocwrap's stderr: its end of file), each containment.
B7 100 supervisors sharing one owner: owner SIGKILL -> the last tree gone.
B8 attach: `ocwrap up` for a port whose server is already up and ready, from
   exec to exit (hyperfine), beside `true`.

Figures are min / median / p95 / max (and p99 where stated) over the runs stated.
The machine may be shared: the load average before and after is printed.
"""

import json
import os
import platform
import random
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release")
OCWRAP = os.path.join(BIN, "ocwrap")
FIXTURE = os.path.join(BIN, "ocwrap-fixture")
# The state dir on tmpfs where the machine has one, as `$XDG_RUNTIME_DIR` is on a
# desktop: on a busy disk each of the few metadata operations of a launch (lock,
# socket, record, their removal) can cost milliseconds, which would measure the
# disk, not ocwrap. The report says which file system it was.
STATE = tempfile.mkdtemp(prefix="ocwrap-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
os.environ["OCWRAP_STATE_DIR"] = os.path.join(STATE, "state")


def pct(v, q):
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def stats(values, unit="ms", scale=1e3, p99=False):
    v = sorted(values)
    f = lambda x: f"{x * scale:.2f}"
    mid = [statistics.median(v), pct(v, 0.95)] + ([pct(v, 0.99)] if p99 else [])
    return " / ".join(f(x) for x in [v[0], *mid, v[-1]]) + f" {unit}"


class IdleHost:
    """N idle processes, outside every tree, for as long as the `with` lasts: the
    fixture's `decoys` mode (they block every signal and die with their parent)."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.proc = None
        if self.n:
            self.proc = subprocess.Popen([FIXTURE, "decoys", str(self.n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            read_until(self.proc, "decoys")
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.read()  # end of file: every idle process has exited
        return False


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001 - a missing tool is reported, not fatal
        return f"unavailable ({e})"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_pending = {}


def read_until(proc, prefix, deadline=30):
    """Lines of proc.stdout until one starts with prefix; returns all lines read.
    Reads the descriptor directly: a buffered reader would hide lines from select."""
    fd = proc.stdout.fileno()
    lines, end = [], time.monotonic() + deadline
    while time.monotonic() < end:
        buffered = _pending.get(fd, b"")
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            _pending[fd] = buffered
            lines.append(line.decode().strip())
            if lines[-1].startswith(prefix):
                return lines
        ready, _, _ = select.select([fd], [], [], max(0, end - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        _pending[fd] = buffered + chunk
    raise RuntimeError(f"no line starting with {prefix!r}: {lines}")


def pid_after(lines, label):
    return [int(l.split()[1]) for l in lines if l.startswith(label + " ")]


def wait_all_gone(fds, deadline=30):
    end = time.monotonic() + deadline
    pending = list(fds)
    while pending:
        ready, _, _ = select.select(pending, [], [], max(0, end - time.monotonic()))
        if not ready:
            raise RuntimeError("tree not gone in time")
        pending = [fd for fd in pending if fd not in ready]


def hyperfine(cmds, runs=300):
    out = os.path.join(STATE, "hyperfine.json")
    subprocess.run(
        ["hyperfine", "-N", "--warmup", "20", "--runs", str(runs), "--export-json", out, *cmds.values()],
        check=True, capture_output=True,
    )
    results = {r["command"]: r["times"] for r in json.load(open(out))["results"]}
    return {name: results[cmd] for name, cmd in cmds.items()}


def b1():
    ours = {
        "ocwrap -- true (cgroup)": f"{OCWRAP} --owner none --contain cgroup -- true",
        "ocwrap -- true (group)": f"{OCWRAP} --owner none --contain group -- true",
    }
    rows = hyperfine({
        "true": "true",
        "setsid -w true": "setsid -w true",
        "tini -s -- true": "tini -s -- true",
        "dumb-init true": "dumb-init true",
        **ours,
    })
    print("## B1 launch overhead (300 runs each, hyperfine -N)\n")
    print("| command | min / median / p95 / max | this median ÷ `setsid -w true` |")
    print("|---|---|---|")
    base = statistics.median(rows["setsid -w true"])
    for name, times in rows.items():
        print(f"| `{name}` | {stats(times)} | {statistics.median(times) / base:.2f}× |")
    with IdleHost(1000):
        busy = hyperfine({"setsid -w true": "setsid -w true", **ours})
    print("\nThe same with 1,000 idle host processes (started by the bench):\n")
    print("| command | min / median / p95 / max | this median ÷ `setsid -w true` | ÷ its quiet median |")
    print("|---|---|---|---|")
    base = statistics.median(busy["setsid -w true"])
    for name, times in busy.items():
        quiet = statistics.median(rows[name])
        print(f"| `{name}` | {stats(times)} | {statistics.median(times) / base:.2f}× | {statistics.median(times) / quiet:.2f}× |")
    print()


def teardown_once(method, ignore_term, contain="auto"):
    owner = subprocess.Popen([FIXTURE, "sleep"], stdout=subprocess.PIPE, text=True)
    read_until(owner, "sleeper")
    fixture = ["tree", "--children", "2", "--escape"] + (["--ignore-term"] if ignore_term else [])
    sup = subprocess.Popen(
        [OCWRAP, "--owner-pid", str(owner.pid), "--watch-method", method, "--contain", contain, "--grace", "1s",
         "--", FIXTURE, *fixture],
        stdout=subprocess.PIPE, text=True,
    )
    lines = read_until(sup, "ready")
    pids = pid_after(lines, "server") + pid_after(lines, "child") + pid_after(lines, "escapee")
    assert len(pids) == 4, lines
    fds = [os.pidfd_open(p) for p in pids]
    # Kill at a random moment, so the poll method is caught at any phase of its timer.
    time.sleep(random.uniform(0, 0.25))
    t0 = time.monotonic()
    owner.kill()
    wait_all_gone(fds)
    took = time.monotonic() - t0
    for fd in fds:
        os.close(fd)
    owner.wait()
    sup.wait(timeout=30)
    return took


def b2(runs):
    print(f"## B2 teardown latency: owner SIGKILL → 4-process tree gone\n")
    print("| containment | idle host processes | runs | min / median / p95 / p99 / max |")
    print("|---|---|---|---|")
    for idle in [0, 1000]:
        with IdleHost(idle):
            for contain in ["cgroup", "group"]:
                times = [teardown_once("pidfd", False, contain) for _ in range(runs)]
                print(f"| {contain} | {idle} | {runs} | {stats(times, p99=True)} |")
    slow = max(5, runs // 5)
    print("\nOther watch methods and servers (default containment, no idle processes):\n")
    print("| watch | server | runs | min / median / p95 / max |")
    print("|---|---|---|---|")
    for method, ignore in [("pidfd", True), ("poll", False), ("poll", True)]:
        n = slow if ignore else runs
        times = [teardown_once(method, ignore) for _ in range(n)]
        what = "ignores SIGTERM (--grace 1s)" if ignore else "honours SIGTERM"
        print(f"| {method} | {what} | {n} | {stats(times)} |")
    print()


def proc_figures(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = vol = invol = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    invol += int(line.split()[1])
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, rss, vol + invol


def b3(window=30):
    holders = {
        "ocwrap (pidfd)": [OCWRAP, "--owner-pid", str(os.getpid()), "--watch-method", "pidfd", "--"],
        "ocwrap (poll)": [OCWRAP, "--owner-pid", str(os.getpid()), "--watch-method", "poll", "--"],
        "tini": ["tini", "-s", "--"],
        "dumb-init": ["dumb-init"],
    }
    procs, grandchildren = {}, []
    for name, prefix in holders.items():
        p = subprocess.Popen([*prefix, FIXTURE, "tree", "--children", "1"], stdout=subprocess.PIPE, text=True)
        grandchildren += [os.pidfd_open(pid) for pid in pid_after(read_until(p, "ready"), "child")]
        procs[name] = p
    before = {n: proc_figures(p.pid) for n, p in procs.items()}
    time.sleep(window)  # the measurement window itself
    after = {n: proc_figures(p.pid) for n, p in procs.items()}
    print(f"## B3 idle cost over {window} s, holding the same fixture server\n")
    print("| supervisor | RSS | CPU time | context switches |")
    print("|---|---|---|---|")
    for name in holders:
        cpu = after[name][0] - before[name][0]
        switches = after[name][2] - before[name][2]
        print(f"| {name} | {after[name][1]} KiB | {cpu * 1e3:.0f} ms | {switches} |")
    print()
    for p in procs.values():
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    # tini and dumb-init leave the grandchild behind when the server dies; end it.
    for fd in grandchildren:
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(fd)


def up_once(delay_ms):
    port = free_port()
    t0 = time.time()
    out = subprocess.run(
        [OCWRAP, "up", "--json", "--port", str(port), "--owner-pid", str(os.getpid()), "--",
         FIXTURE, "tree", "--listen", str(port), "--listen-after", str(delay_ms)],
        capture_output=True, text=True, timeout=60,
    )
    returned = time.time()
    info = json.loads(out.stdout)
    log = open(info["log"]).read()
    listening = int([l for l in log.splitlines() if l.startswith("listening")][0].split()[-1]) / 1e9
    subprocess.run([OCWRAP, "stop", "--port", str(port), "--wait"], capture_output=True, timeout=60)
    return returned - listening, returned - t0


def up_socket_once(delay_ms):
    """As up_once, for a broker on a Unix socket (`up --socket`)."""
    path = os.path.join(STATE, f"bench-{random.randrange(1 << 30)}.sock")
    t0 = time.time()
    out = subprocess.run(
        [OCWRAP, "up", "--json", "--socket", path, "--owner-pid", str(os.getpid()), "--",
         FIXTURE, "broker", path, "--after", str(delay_ms)],
        capture_output=True, text=True, timeout=60,
    )
    returned = time.time()
    info = json.loads(out.stdout)
    log = open(info["log"]).read()
    listening = int([l for l in log.splitlines() if l.startswith("listening")][0].split()[-1]) / 1e9
    subprocess.run([OCWRAP, "stop", "--socket", path, "--wait"], capture_output=True, timeout=60)
    os.unlink(path)
    return returned - listening, returned - t0


def poll_loop_once(delay_ms, interval=0.25):
    port = free_port()
    server = subprocess.Popen(
        [FIXTURE, "tree", "--listen", str(port), "--listen-after", str(delay_ms)], stdout=subprocess.PIPE, text=True
    )
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(interval)
    returned = time.time()
    lines = read_until(server, "listening")
    listening = int(lines[-1].split()[-1]) / 1e9
    server.kill()
    server.wait()
    return returned - listening


def b4(runs):
    # The server starts listening after a random 100-600 ms, so a fixed polling
    # interval is caught at every phase, as in real life.
    delays = [random.randint(100, 600) for _ in range(runs)]
    ups = [up_once(d) for d in delays]
    sockets = [up_socket_once(d) for d in delays]
    loop = [poll_loop_once(d) for d in delays]
    print(f"## B4 readiness: port or socket accepting → caller knows ({runs} runs, server listens after 100-600 ms)\n")
    print("| method | min / median / p95 / max |")
    print("|---|---|")
    print(f"| `ocwrap up --port` (TCP) | {stats([u[0] for u in ups])} |")
    print(f"| `ocwrap up --socket` (Unix socket) | {stats([u[0] for u in sockets])} |")
    print(f"| 250 ms polling loop (TCP) | {stats(loop)} |")
    print(f"\n`ocwrap up` end to end, including the server's start-up: {stats([u[1] for u in ups])}\n")


def b5(runs, n=128):
    walls, started = [], []
    for _ in range(runs):
        port = free_port()
        t0 = time.monotonic()
        procs = [
            subprocess.Popen(
                [OCWRAP, "up", "--json", "--port", str(port), "--owner-pid", str(os.getpid()), "--",
                 FIXTURE, "tree", "--listen", str(port)],
                stdout=subprocess.PIPE, text=True,
            )
            for _ in range(n)
        ]
        answers = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
        walls.append(time.monotonic() - t0)
        started.append(sum(a["status"] == "started" for a in answers))
        assert len({a["pid"] for a in answers}) == 1, answers
        subprocess.run([OCWRAP, "stop", "--port", str(port), "--wait"], capture_output=True, timeout=60)
    print(f"## B5 contention: {n} concurrent `ocwrap up` for one port ({runs} runs)\n")
    print(f"- wall time until all {n} answered: {stats(walls)}")
    print(f"- servers started per run: {sorted(set(started))} (one server PID in every answer)\n")


def b8(runs):
    port = free_port()
    owner = subprocess.Popen([FIXTURE, "sleep"], stdout=subprocess.DEVNULL)
    up = [OCWRAP, "up", "--json", "--port", str(port), "--owner-pid", str(owner.pid), "--",
          FIXTURE, "tree", "--listen", str(port)]
    first = json.loads(subprocess.run(up, capture_output=True, text=True, timeout=60).stdout)
    assert first["status"] == "started", first
    times = hyperfine({"up": " ".join(up), "true": "true"}, runs)
    again = json.loads(subprocess.run(up, capture_output=True, text=True, timeout=60).stdout)
    assert again["status"] == "attached" and again["pid"] == first["pid"], again
    owner.kill()
    owner.wait()
    subprocess.run([OCWRAP, "stop", "--port", str(port), "--wait"], capture_output=True, timeout=60)
    print(f"## B8 attach to a ready server ({runs} runs, hyperfine -N)\n")
    print("| command | min / median / p95 / max |")
    print("|---|---|")
    print(f"| `ocwrap up` (attached) | {stats(times['up'])} |")
    print(f"| `true` | {stats(times['true'])} |\n")


def wait_eof(fds, deadline=60):
    """Waits until every descriptor in fds reads end of file."""
    end = time.monotonic() + deadline
    pending = list(fds)
    while pending:
        ready, _, _ = select.select(pending, [], [], max(0, end - time.monotonic()))
        if not ready:
            raise RuntimeError("still open")
        for fd in ready:
            if not os.read(fd, 65536):
                pending.remove(fd)


def tree_size_once(size, contain):
    owner = subprocess.Popen([FIXTURE, "sleep"], stdout=subprocess.PIPE, text=True)
    read_until(owner, "sleeper")
    sup = subprocess.Popen(
        [OCWRAP, "--owner-pid", str(owner.pid), "--contain", contain, "--", FIXTURE, "wide", str(size)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    read_until(sup, f"ready {size}", deadline=120)
    t0 = time.monotonic()
    owner.kill()
    wait_eof([sup.stderr.fileno()])
    took = time.monotonic() - t0
    owner.wait()
    sup.wait(timeout=30)
    return took


def b6(runs):
    print("## B6 tree size: owner SIGKILL → every process of the tree gone\n")
    print("| processes | containment | runs | min / median / p95 / max |")
    print("|---|---|---|---|")
    for size in [10, 100, 1000]:
        for contain in ["cgroup", "group"]:
            times = [tree_size_once(size, contain) for _ in range(runs)]
            print(f"| {size} | {contain} | {runs} | {stats(times)} |")
    print()


def shared_owner_once(n, contain):
    owner = subprocess.Popen([FIXTURE, "sleep"], stdout=subprocess.PIPE, text=True)
    read_until(owner, "sleeper")
    sups = [
        subprocess.Popen(
            [OCWRAP, "--owner-pid", str(owner.pid), "--contain", contain, "--", FIXTURE, "tree", "--children", "1"],
            stdout=subprocess.PIPE, text=True,
        )
        for _ in range(n)
    ]
    for sup in sups:
        read_until(sup, "ready")
    t0 = time.monotonic()
    owner.kill()
    # Each tree holds its supervisor's stdout: the last end of file is the last tree gone.
    wait_eof([sup.stdout.fileno() for sup in sups])
    took = time.monotonic() - t0
    owner.wait()
    for sup in sups:
        sup.wait(timeout=30)
    return took


def b7(runs, n=100):
    print(f"## B7 {n} supervisors sharing one owner: owner SIGKILL → the last tree gone\n")
    print("| containment | runs | min / median / p95 / max |")
    print("|---|---|---|")
    for contain in ["cgroup", "group"]:
        times = [shared_owner_once(n, contain) for _ in range(runs)]
        print(f"| {contain} | {runs} | {stats(times)} |")
    print()


def load():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main():
    random.seed(int(os.environ.get("BENCH_SEED", "1")))
    print("# ocwrap benchmark report\n")
    print(f"- kernel: {platform.system()} {platform.release()} ({platform.machine()})")
    print(f"- CPUs: {os.cpu_count()}")
    print(f"- ocwrap: {version([OCWRAP, '--version'])}")
    for tool in [["tini", "--version"], ["dumb-init", "--version"], ["catatonit", "--version"], ["hyperfine", "--version"]]:
        print(f"- {tool[0]}: {version(tool)}")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"- ocwrap binary: {os.path.getsize(OCWRAP)} bytes, {version(['file', '-b', OCWRAP]).split(',')[0]}")
    fs = subprocess.run(["stat", "-f", "-c", "%T", STATE], capture_output=True, text=True).stdout.strip()
    print(f"- state dir: {STATE} ({fs})")
    print(f"- load average before: {load()}\n")
    print("Figures are min / median / p95 / max.\n")
    b1()
    b2(int(os.environ.get("BENCH_B2_RUNS", "200")))
    b3()
    b4(int(os.environ.get("BENCH_B4_RUNS", "20")))
    b5(int(os.environ.get("BENCH_B5_RUNS", "5")))
    b6(int(os.environ.get("BENCH_B6_RUNS", "10")))
    b7(int(os.environ.get("BENCH_B7_RUNS", "3")))
    b8(int(os.environ.get("BENCH_B8_RUNS", "200")))
    print(f"Load average after: {load()}")
    shutil.rmtree(STATE, ignore_errors=True)


if __name__ == "__main__":
    main()
