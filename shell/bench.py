"""ocwrap benchmarks (issue 5), printed as one markdown report.

B1 launch overhead: `ocwrap -- true` beside `true`, `setsid -w true`,
   `tini -s -- true`, `dumb-init true` (hyperfine).
B2 teardown latency: owner SIGKILL -> every process of a 4-process tree (server,
   two grandchildren, one setsid escapee) gone, watched through pidfds; pidfd and
   poll watch methods, a server that honours SIGTERM and one that ignores it
   (--grace 1s).
B3 idle cost: RSS, CPU time and context switches over 30 s of idling, for ocwrap,
   tini and dumb-init each holding the same fixture server.
B4 readiness: from the port accepting to `ocwrap up` returning, beside a 250 ms
   polling loop (what plugins do today).
B5 contention: 32 concurrent `ocwrap up` for one port: wall time, servers started.

Every figure is min / median / p95 / max over the runs stated.
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
STATE = tempfile.mkdtemp(prefix="ocwrap-bench-")
os.environ["OCWRAP_STATE_DIR"] = os.path.join(STATE, "state")


def stats(values, unit="ms", scale=1e3):
    v = sorted(values)
    p95 = v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]
    f = lambda x: f"{x * scale:.2f}"
    return f"{f(v[0])} / {f(statistics.median(v))} / {f(p95)} / {f(v[-1])} {unit}"


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


def b1():
    out = os.path.join(STATE, "b1.json")
    cmds = {
        "true": "true",
        "setsid -w true": "setsid -w true",
        "tini -s -- true": "tini -s -- true",
        "dumb-init true": "dumb-init true",
        "ocwrap -- true": f"{OCWRAP} --owner none -- true",
    }
    subprocess.run(
        ["hyperfine", "-N", "--warmup", "20", "--runs", "300", "--export-json", out, *cmds.values()],
        check=True, capture_output=True,
    )
    results = {r["command"]: r["times"] for r in json.load(open(out))["results"]}
    rows = {name: results[cmd] for name, cmd in cmds.items()}
    ours = statistics.median(rows["ocwrap -- true"])
    print("## B1 launch overhead (300 runs each, hyperfine -N)\n")
    print("| command | min / median / p95 / max | ocwrap median ÷ this |")
    print("|---|---|---|")
    for name, times in rows.items():
        print(f"| `{name}` | {stats(times)} | {ours / statistics.median(times):.2f}× |")
    print()


def teardown_once(method, ignore_term):
    owner = subprocess.Popen([FIXTURE, "sleep"], stdout=subprocess.PIPE, text=True)
    read_until(owner, "sleeper")
    fixture = ["tree", "--children", "2", "--escape"] + (["--ignore-term"] if ignore_term else [])
    sup = subprocess.Popen(
        [OCWRAP, "--owner-pid", str(owner.pid), "--watch-method", method, "--grace", "1s", "--", FIXTURE, *fixture],
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
    print("| watch | server | runs | min / median / p95 / max |")
    print("|---|---|---|---|")
    for method in ["pidfd", "poll"]:
        for ignore in [False, True]:
            times = [teardown_once(method, ignore) for _ in range(runs)]
            what = "ignores SIGTERM (--grace 1s)" if ignore else "honours SIGTERM"
            print(f"| {method} | {what} | {runs} | {stats(times)} |")
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
    loop = [poll_loop_once(d) for d in delays]
    print(f"## B4 readiness: port accepting → caller knows ({runs} runs, server listens after 100-600 ms)\n")
    print("| method | min / median / p95 / max |")
    print("|---|---|")
    print(f"| `ocwrap up` | {stats([u[0] for u in ups])} |")
    print(f"| 250 ms polling loop | {stats(loop)} |")
    print(f"\n`ocwrap up` end to end, including the server's start-up: {stats([u[1] for u in ups])}\n")


def b5(runs, n=32):
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


def main():
    random.seed(int(os.environ.get("BENCH_SEED", "1")))
    print("# ocwrap benchmark report\n")
    print(f"- kernel: {platform.system()} {platform.release()} ({platform.machine()})")
    print(f"- CPUs: {os.cpu_count()}")
    print(f"- ocwrap: {version([OCWRAP, '--version'])}")
    for tool in [["tini", "--version"], ["dumb-init", "--version"], ["catatonit", "--version"], ["hyperfine", "--version"]]:
        print(f"- {tool[0]}: {version(tool)}")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
    print("Figures are min / median / p95 / max.\n")
    b1()
    b2(int(os.environ.get("BENCH_B2_RUNS", "100")))
    b3()
    b4(int(os.environ.get("BENCH_B4_RUNS", "20")))
    b5(int(os.environ.get("BENCH_B5_RUNS", "5")))
    shutil.rmtree(STATE, ignore_errors=True)


if __name__ == "__main__":
    main()
