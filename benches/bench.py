#!/usr/bin/env python3
"""connleak's benchmark: a full diagnosis against `ss -tan` (and `ss -tanp`) on the same sockets.

    sudo python3 benches/bench.py [--connections 100000] [--procs 100] [--runs 7]
    sudo python3 benches/bench.py --curve 50000,150000,500000 [--procs 100] [--runs 5]

Needs root, iproute2 and GNU time (`apt-get install time`).
Builds the release binary, then, in a private network namespace, CONNECTIONS established loopback
connections held by PROCS processes (both ends in the same process, so 2 sockets per connection)
plus a client that keeps opening short connections (TIME_WAIT churn). It then runs each command
RUNS times and prints the median wall time and the peak RSS, with connleak's ratios to `ss -tan`.
The targets (connleak within 1.5x of `ss -tan`, peak RSS under 64 MiB at 200k sockets) are printed
beside the figures; this is a measurement, not a test, and it never fails on a figure.

--curve takes a list of connection counts, builds each in a fresh namespace (raising the fd
limits and tcp_max_tw_buckets there as needed), and ends with one table of sockets, wall time and
peak RSS per size, for connleak and `ss -tan`. `ss -tanp` is timed only at sizes up to
--ss-p-max sockets: it reads every fd of every process once per socket table entry and takes
minutes beyond that.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ROLES = os.path.join(ROOT, "tests", "scenarios", "roles.py")
BINARY = os.path.join(ROOT, "target", "release", "connleak")
TIME = "/usr/bin/time"  # GNU time, Debian package "time"


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def spawn(ns, rundir, i, role, *args):
    ready = os.path.join(rundir, "%03d-%s.json" % (i, role))
    log = open(ready[:-5] + ".log", "w")
    subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, ROLES, role, "--ready", ready,
                      *map(str, args)], stdout=log, stderr=log, start_new_session=True)
    return ready


def wait_ready(paths, timeout):
    end = time.time() + timeout
    for p in paths:
        while not os.path.exists(p):
            if time.time() > end:
                raise SystemExit("bench: %s not ready; see its .log" % p)
            time.sleep(0.2)


def measure(ns, cmd, runs, rundir):
    """Median wall seconds and max peak RSS (KiB) of `ip netns exec NS CMD`, output discarded.

    The peak RSS comes from GNU time, which forks: a process this script started directly would
    carry this script's own peak into its ru_maxrss (the kernel keeps it across exec).
    """
    report = os.path.join(rundir, "time.out")
    walls, rss = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([TIME, "-f", "%M", "-o", report, "ip", "netns", "exec", ns, *cmd],
                       stdout=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - t0)
        with open(report) as f:
            rss = max(rss, int(f.read().split()[-1]))
    return statistics.median(walls), rss


def count_sockets(ns):
    out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Htan"], capture_output=True, text=True)
    return len(out.stdout.splitlines())


def build(ns, rundir, connections, procs, a):
    """The sockets of one size in namespace NS; returns the socket count `ss` sees."""
    sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=262144")
    per = connections // procs
    t0 = time.time()
    holders = [spawn(ns, rundir, i, "holder", "--port", 10000 + i, "--n", per, "--index", i)
               for i in range(procs)]
    wait_ready(holders, 1800)
    echo = spawn(ns, rundir, procs, "echo_server", "--port", 7009)
    wait_ready([echo], 60)
    churn = spawn(ns, rundir, procs + 1, "churn", "--port", 7009, "--n", 0, "--wait", a.churn_gap)
    wait_ready([churn], 60)
    time.sleep(a.settle)
    sockets = count_sockets(ns)
    print("built %d connections in %d processes in %.0f s; %d TCP sockets in the namespace"
          % (per * procs, procs, time.time() - t0, sockets), flush=True)
    return sockets


def teardown(ns, rundir):
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", ns])
    subprocess.run(["rm", "-rf", rundir])


def one_size(connections, a, with_ss_p):
    """Builds CONNECTIONS in a fresh namespace, measures each command; {name: (wall, rss)}."""
    ns = "connleak-bench-%d-%d" % (os.getpid(), connections)
    rundir = "/tmp/" + ns
    os.makedirs(rundir, exist_ok=True)
    sh("ip", "netns", "add", ns)
    try:
        sockets = build(ns, rundir, connections, a.procs, a)
        rows = [
            ("connleak (full diagnosis)", [BINARY]),
            ("connleak --json", [BINARY, "--json"]),
            ("ss -tan", ["ss", "-tan"]),
        ]
        if with_ss_p(sockets):
            rows.append(("ss -tanp", ["ss", "-tanp"]))
        results = {name: measure(ns, cmd, a.runs, rundir) for name, cmd in rows}
        base_wall, _ = results["ss -tan"]
        print("\n%-28s %10s %12s %12s" % ("command", "wall (ms)", "peak RSS", "vs ss -tan"))
        for name, (wall, rss) in results.items():
            print("%-28s %10.0f %9.1f MiB %11.2fx" % (name, wall * 1000, rss / 1024, wall / base_wall))
        return sockets, results
    finally:
        teardown(ns, rundir)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=100000)
    ap.add_argument("--curve", help="comma-separated connection counts, one namespace each")
    ap.add_argument("--procs", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--ss-p-max", type=int, default=250000,
                    help="time ss -tanp only up to this many sockets")
    ap.add_argument("--settle", type=float, default=20.0, help="seconds of TIME_WAIT churn first")
    ap.add_argument("--churn-gap", type=float, default=0.002,
                    help="seconds between the churning client's short connections")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces)")
    if not os.access(TIME, os.X_OK):
        raise SystemExit("bench: needs GNU time for peak RSS: apt-get install time")
    sh("cargo", "build", "--release", "--quiet", cwd=ROOT)

    if not a.curve:
        _, results = one_size(a.connections, a, lambda n: n <= a.ss_p_max)
        base_wall, _ = results["ss -tan"]
        wall, rss = results["connleak (full diagnosis)"]
        print("\ntargets: wall within 1.5x of ss -tan: %.2fx (%s); peak RSS under 64 MiB: %.1f MiB (%s)"
              % (wall / base_wall, "met" if wall <= 1.5 * base_wall else "missed",
                 rss / 1024, "met" if rss < 64 * 1024 else "missed"))
        return
    curve = []
    for connections in (int(c) for c in a.curve.split(",")):
        print("\n== %d connections ==" % connections, flush=True)
        curve.append(one_size(connections, a, lambda n: n <= a.ss_p_max))
    print("\n%10s %14s %14s %14s %10s %16s" % ("sockets", "connleak (ms)", "peak RSS", "ss -tan (ms)",
                                              "ratio", "RSS per socket"))
    for sockets, results in curve:
        wall, rss = results["connleak (full diagnosis)"]
        ss_wall, _ = results["ss -tan"]
        print("%10d %14.0f %10.1f MiB %14.0f %9.2fx %14.0f B" % (sockets, wall * 1000, rss / 1024,
                                                            ss_wall * 1000, wall / ss_wall,
                                                            rss * 1024 / max(sockets, 1)))


if __name__ == "__main__":
    main()
