#!/usr/bin/env python3
"""connleak's benchmark: a full diagnosis against the bare socket dump (`ss -tan`), cold and warm.

    sudo python3 benches/bench.py                          # 100k, 300k and 1M sockets
    sudo python3 benches/bench.py --sizes 100k --runs 5     # a quick run
    sudo python3 benches/bench.py --sizes none --many-sizes 100k,1M   # many namespaces only

Needs root, iproute2, util-linux's nsenter and GNU time (`apt-get install time`).
For each size it builds, in a fresh private network namespace, established loopback connections
held by --procs processes (both ends in the same process: 2 sockets a connection) plus a client
that keeps opening short connections (TIME_WAIT churn). It then times, side by side:

  - connleak's full diagnosis (the table, written to /dev/null) and `ss -tan` (and `ss -tanp`,
    which also maps owners, at the smallest size only: it takes minutes beyond);
  - the COLD runs: each after `echo 2 > /proc/sys/vm/drop_caches` (dentries and inodes, among
    them every /proc/PID/fd/N the owner scan reads), the first one reported on its own; then the
    WARM runs, interleaved command by command so that both see the same machine load;
  - wall time, CPU time (user + system), peak RSS, and connleak's own phases
    (CONNLEAK_TIMINGS=1: dump, fd scan, join, owners, threads, kernel, diagnosis, render);
  - the kernel's bare dump with and without tcp_info (INET_DIAG_INFO), read and discarded
    without decoding, so that its cost per socket is known.

With --many-sizes, each size is built again beside --many-netns small namespaces (a pod's
worth each: a listener and two connections, both ends held), and `connleak --all-netns` is
timed against the big namespace's diagnosis alone and against `ss -tan` looped over every
namespace (what a script would do), with connleak's phases and how each namespace was read.

Every command runs under `nsenter --net` (a setns and an exec, nothing else), so none of them
pays for a mount namespace. This is a measurement, not a test: it never fails on a figure.
"""
import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ROLES = os.path.join(ROOT, "tests", "scenarios", "roles.py")
BINARY = os.path.join(ROOT, "target", "release", "connleak")
TIME = "/usr/bin/time"  # GNU time, Debian package "time"
PHASES = ["host scan", "dump", "lookups", "fd scan", "join", "owners", "threads", "kernel",
          "diagnosis", "render"]
TARGET = 1.2  # connleak's wall time within this factor of `ss -tan`, cold and warm
MANY_TARGET = 1.5  # --all-netns within this factor of the big namespace alone


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def size(text):
    """`100k`, `1M`, `250000` → a socket count."""
    text = text.strip().lower()
    scale = {"k": 1000, "m": 1000000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


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


def in_ns(ns, cmd):
    return ["nsenter", "--net=/run/netns/" + ns, "--", *cmd]


def count_sockets(ns):
    out = subprocess.run(in_ns(ns, ["ss", "-Htan"]), capture_output=True, text=True)
    return len(out.stdout.splitlines())


def build(ns, rundir, sockets, procs, a):
    """About SOCKETS sockets in namespace NS; returns the socket count `ss` sees."""
    sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=262144")
    per = max(1, sockets // 2 // procs)
    t0 = time.time()
    holders = [spawn(ns, rundir, i, "holder", "--port", 10000 + i, "--n", per, "--index", i)
               for i in range(procs)]
    wait_ready(holders, 3600)
    echo = spawn(ns, rundir, procs, "echo_server", "--port", 7009)
    wait_ready([echo], 60)
    churn = spawn(ns, rundir, procs + 1, "churn", "--port", 7009, "--n", 0, "--wait", a.churn_gap)
    wait_ready([churn], 60)
    time.sleep(a.settle)
    found = count_sockets(ns)
    print("built %d connections in %d processes in %.0f s; %d TCP sockets in the namespace"
          % (per * procs, procs, time.time() - t0, found), flush=True)
    return found


def teardown(ns, rundir):
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", ns])
    subprocess.run(["rm", "-rf", rundir])


def drop_caches():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")


def run_once(ns, cmd, rundir):
    """One run: {wall, cpu, rss (KiB), phases {name: ms}}; stdout discarded.

    Peak RSS and CPU come from GNU time, which forks: a process this script started directly
    would carry this script's own peak into its ru_maxrss (the kernel keeps it across exec).
    """
    report = os.path.join(rundir, "time.out")
    env = dict(os.environ, CONNLEAK_TIMINGS="1", NO_COLOR="1")
    t0 = time.perf_counter()
    p = subprocess.run([TIME, "-f", "%U %S %M", "-o", report, *in_ns(ns, cmd)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 1, 2) or not os.path.exists(report):
        raise SystemExit("bench: %s failed: %s" % (" ".join(cmd), p.stderr[-2000:]))
    with open(report) as f:
        user, system, rss = f.read().split()[-3:]
    phases, notes = {}, set()
    for line in p.stderr.splitlines():
        # connleak: timing PHASE MS ms / connleak: note TEXT
        if line.startswith("connleak: timing "):
            name, ms = line[len("connleak: timing "):].rsplit(" ", 2)[:2]
            phases[name] = phases.get(name, 0.0) + float(ms)
        elif line.startswith("connleak: note "):
            note = line[len("connleak: note "):]
            # "namespace NAME: how it was read" once per namespace: counted, not listed.
            if note.startswith("namespace "):
                note = "namespaces " + note.split(": ", 1)[-1].split(" sockets ")[-1]
            notes.add(note)
    return {"wall": wall, "cpu": float(user) + float(system), "rss": int(rss), "phases": phases,
            "notes": notes}


def measure(ns, commands, a, rundir):
    """{name: {"cold": [runs], "warm": [runs]}}, runs interleaved across the commands."""
    runs = {name: {"cold": [], "warm": []} for name, _, _ in commands}
    for _ in range(a.cold_runs):
        for name, cmd, _ in commands:
            drop_caches()
            runs[name]["cold"].append(run_once(ns, cmd, rundir))
    for i in range(a.runs):
        for name, cmd, slow in commands:
            if not slow or i < a.slow_runs:
                runs[name]["warm"].append(run_once(ns, cmd, rundir))
    return runs


def median(runs, key):
    return statistics.median(r[key] for r in runs)


# --- the kernel's bare dump, with and without tcp_info ---------------------------------------

TCPDIAG_GETSOCK, NLM_F_REQUEST, NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR = 18, 1, 0x300, 3, 2
INET_DIAG_INFO = 2


def bare_dump(extensions):
    """Dumps every TCP socket of this namespace, IPv4 and IPv6 in one walk of the kernel's table
    (the legacy TCPDIAG_GETSOCK request, as `ss -tan` and connleak make it), discarding the
    replies: (wall seconds, CPU seconds (user and system), sockets, bytes)."""
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)  # NETLINK_SOCK_DIAG
    nl.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    buf = bytearray(256 * 1024)
    t0, s0 = time.perf_counter(), time.thread_time()
    sockets = nbytes = 0
    # struct inet_diag_req: family, src_len, dst_len, ext, an empty sockid, states, dbs
    req = struct.pack("=BBBB", socket.AF_INET, 0, 0, extensions) + bytes(48) + \
        struct.pack("=II", 0xfff, 0)
    nl.send(struct.pack("=IHHII", 16 + len(req), TCPDIAG_GETSOCK,
                        NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + req)
    done = False
    while not done:
        n = nl.recv_into(buf)
        nbytes += n
        off = 0
        while off < n:
            length, kind = struct.unpack_from("=IH", buf, off)
            if kind in (NLMSG_DONE, NLMSG_ERROR):
                done = True
                break
            sockets += 1
            off += (length + 3) & ~3
    return time.perf_counter() - t0, time.thread_time() - s0, sockets, nbytes


def dump_probe(a):
    """Run inside the namespace: one line per extension setting, the least CPU of --runs, the two
    interleaved so that both see the same machine load."""
    settings = (("with", 1 << (INET_DIAG_INFO - 1)), ("without", 0))
    results = {label: [] for label, _ in settings}
    for _ in range(a.runs):
        for label, ext in settings:
            results[label].append(bare_dump(ext))
    for label, runs in results.items():
        print("%s %.6f %.6f %d %d" % (label, *min(runs, key=lambda r: r[1])))


def dump_cost(ns, a):
    out = subprocess.run(in_ns(ns, [sys.executable, os.path.abspath(__file__), "--dump-probe",
                                    "--runs", str(a.runs)]),
                         capture_output=True, text=True, check=True).stdout
    return {f[0]: (float(f[1]), float(f[2]), int(f[3]), int(f[4]))
            for f in (l.split() for l in out.splitlines())}


# --- one size ---------------------------------------------------------------------------------

def one_size(target, a, smallest):
    """Builds about TARGET sockets in a fresh namespace and measures; (sockets, runs, dump)."""
    ns = "connleak-bench-%d-%d" % (os.getpid(), target)
    rundir = "/tmp/" + ns
    os.makedirs(rundir, exist_ok=True)
    sh("ip", "netns", "add", ns)
    try:
        sockets = build(ns, rundir, target, a.procs, a)
        commands = [("connleak", [BINARY], False), ("ss -tan", ["ss", "-tan"], False)]
        if smallest and not a.no_ss_p:
            commands.append(("ss -tanp", ["ss", "-tanp"], True))
        runs = measure(ns, commands, a, rundir)
        dump = dump_cost(ns, a)
        print_size(sockets, runs, dump)
        return sockets, runs, dump
    finally:
        teardown(ns, rundir)


def print_size(sockets, runs, dump):
    base = runs["ss -tan"]
    print("\n%-10s %10s %10s %10s %9s %10s %10s %12s" % (
        "command", "cold 1st", "cold med", "warm med", "cpu warm", "peak RSS", "cold/ss", "warm/ss"))
    for name, r in runs.items():
        cold1, coldm, warm = r["cold"][0]["wall"], median(r["cold"], "wall"), median(r["warm"], "wall")
        print("%-10s %8.0f ms %7.0f ms %7.0f ms %6.0f ms %6.1f MiB %9.2fx %11.2fx" % (
            name, cold1 * 1e3, coldm * 1e3, warm * 1e3, median(r["warm"], "cpu") * 1e3,
            max(x["rss"] for x in r["cold"] + r["warm"]) / 1024,
            coldm / median(base["cold"], "wall"), warm / median(base["warm"], "wall")))
    c = runs["connleak"]
    for note in sorted(set().union(*(x["notes"] for x in c["cold"] + c["warm"]))):
        print("connleak: %s" % note)
    for label, key in (("cold", "cold"), ("warm", "warm")):
        print("connleak phases, %s median (ms): %s" % (label, "  ".join(
            "%s %.0f" % (p, statistics.median(x["phases"].get(p, 0.0) for x in c[key]))
            for p in PHASES)))
    w, wo = dump["with"], dump["without"]
    print("bare dump (best): with tcp_info %.0f ms (%.0f ms CPU, %d B/socket), without %.0f ms "
          "(%.0f ms CPU): tcp_info costs %.0f ns of CPU a socket"
          % (w[0] * 1e3, w[1] * 1e3, w[3] / max(w[2], 1), wo[0] * 1e3, wo[1] * 1e3,
             (w[1] - wo[1]) * 1e9 / max(w[2], 1)), flush=True)


def summary(results):
    print("\n%9s | %21s | %21s | %17s | %9s %7s | %s" % (
        "sockets", "connleak cold1/warm", "ss -tan cold1/warm", "ratio cold1/warm", "peak RSS",
        "B/sock", "us/socket warm (connleak, ss)"))
    for sockets, runs, _ in results:
        c, s = runs["connleak"], runs["ss -tan"]
        cw, sw = median(c["warm"], "wall"), median(s["warm"], "wall")
        c1, s1 = c["cold"][0]["wall"], s["cold"][0]["wall"]
        rss = max(x["rss"] for x in c["cold"] + c["warm"]) * 1024
        print("%9d | %8.0f / %7.0f ms | %8.0f / %7.0f ms | %6.2fx / %6.2fx | %5.0f MiB %7.0f | %.2f, %.2f"
              % (sockets, c1 * 1e3, cw * 1e3, s1 * 1e3, sw * 1e3, c1 / s1, cw / sw,
                 rss / 2**20, rss / max(sockets, 1), cw * 1e6 / sockets, sw * 1e6 / sockets))
    print("target: connleak within %.1fx of ss -tan, cold and warm; it is a measurement, not a test"
          % TARGET)


# --- many namespaces -------------------------------------------------------------------------

def small_namespaces(count, rundir, base):
    """COUNT namespaces of a listener and two held connections each; returns their names."""
    names = ["%s-pod%03d" % (base, i) for i in range(count)]
    ready = []
    for i, ns in enumerate(names):
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        ready.append(spawn(ns, rundir, 1000 + i, "holder", "--port", 8080, "--n", 2, "--index", i))
    wait_ready(ready, 600)
    return names


def many_size(target, a):
    """The big namespace of TARGET sockets beside --many-netns small ones;
    (sockets, namespaces, runs)."""
    ns = "connleak-bench-%d-%d" % (os.getpid(), target)
    rundir = "/tmp/" + ns
    os.makedirs(rundir, exist_ok=True)
    sh("ip", "netns", "add", ns)
    small = []
    try:
        sockets = build(ns, rundir, target, a.procs, a)
        small = small_namespaces(a.many_netns, rundir, ns)
        loop = "for n in %s; do nsenter --net=/run/netns/$n ss -tan; done" % " ".join([ns] + small)
        commands = [("big alone", [BINARY], False),
                    ("--all-netns", [BINARY, "--all-netns"], False),
                    ("ss looped", ["sh", "-c", loop], True)]
        runs = measure(ns, commands, a, rundir)
        print_many(sockets, len(small) + 1, runs)
        return sockets, len(small) + 1, runs
    finally:
        for n in small:
            teardown(n, "/nonexistent")
        teardown(ns, rundir)


def print_many(sockets, namespaces, runs):
    base = runs["big alone"]
    print("\n%d sockets in the big namespace, %d namespaces in all" % (sockets, namespaces))
    print("%-12s %10s %10s %10s %9s %10s %12s %12s" % (
        "command", "cold 1st", "cold med", "warm med", "cpu warm", "peak RSS", "cold/alone",
        "warm/alone"))
    for name, r in runs.items():
        print("%-12s %8.0f ms %7.0f ms %7.0f ms %6.0f ms %6.1f MiB %11.2fx %11.2fx" % (
            name, r["cold"][0]["wall"] * 1e3, median(r["cold"], "wall") * 1e3,
            median(r["warm"], "wall") * 1e3, median(r["warm"], "cpu") * 1e3,
            max(x["rss"] for x in r["cold"] + r["warm"]) / 1024,
            median(r["cold"], "wall") / median(base["cold"], "wall"),
            median(r["warm"], "wall") / median(base["warm"], "wall")))
    c = runs["--all-netns"]
    for note in sorted(set().union(*(x["notes"] for x in c["cold"] + c["warm"]))):
        print("connleak --all-netns: %s" % note)
    for label in ("cold", "warm"):
        print("--all-netns phases, %s median, summed over namespaces (ms): %s" % (label, "  ".join(
            "%s %.0f" % (p, statistics.median(x["phases"].get(p, 0.0) for x in c[label]))
            for p in PHASES)))
    print("target: --all-netns within %.1fx of the big namespace alone" % MANY_TARGET, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100k,300k,1M",
                    help="comma-separated socket counts (100k, 1M, ...), one namespace each")
    ap.add_argument("--procs", type=int, default=100, help="processes holding the connections")
    ap.add_argument("--runs", type=int, default=7, help="warm runs of each command")
    ap.add_argument("--cold-runs", type=int, default=3, help="runs after dropping the dentry cache")
    ap.add_argument("--slow-runs", type=int, default=2, help="warm runs of ss -tanp")
    ap.add_argument("--no-ss-p", action="store_true", help="leave ss -tanp out")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds of TIME_WAIT churn first")
    ap.add_argument("--churn-gap", type=float, default=0.002,
                    help="seconds between the churning client's short connections")
    ap.add_argument("--many-sizes", default="100k,1M",
                    help="sizes of the big namespace beside --many-netns small ones ('none': skip)")
    ap.add_argument("--many-netns", type=int, default=110,
                    help="small namespaces beside the big one (a Kubernetes node's pod limit)")
    ap.add_argument("--dump-probe", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.dump_probe:
        return dump_probe(a)
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces, drop_caches)")
    if not os.access(TIME, os.X_OK):
        raise SystemExit("bench: needs GNU time for peak RSS and CPU: apt-get install time")
    sh("cargo", "build", "--release", "--quiet", cwd=ROOT)
    sizes = [] if a.sizes == "none" else [size(s) for s in a.sizes.split(",")]
    results = []
    for target in sizes:
        print("\n== about %d sockets ==" % target, flush=True)
        results.append(one_size(target, a, target == min(sizes)))
    if results:
        summary(results)
    many = [] if a.many_sizes == "none" else [size(s) for s in a.many_sizes.split(",")]
    many_results = []
    for target in many:
        print("\n== about %d sockets and %d more namespaces ==" % (target, a.many_netns), flush=True)
        many_results.append(many_size(target, a))
    if many_results:
        many_summary(many_results)


def many_summary(results):
    print("\n%9s | %10s | %24s | %22s | %s" % (
        "sockets", "namespaces", "big alone cold1/warm", "--all-netns cold1/warm",
        "ratio cold1/warm | ss looped warm"))
    for sockets, namespaces, runs in results:
        b, m, l = runs["big alone"], runs["--all-netns"], runs["ss looped"]
        bw, mw = median(b["warm"], "wall"), median(m["warm"], "wall")
        b1, m1 = b["cold"][0]["wall"], m["cold"][0]["wall"]
        print("%9d | %10d | %9.0f / %8.0f ms | %8.0f / %7.0f ms | %5.2fx / %5.2fx | %.0f ms" % (
            sockets, namespaces, b1 * 1e3, bw * 1e3, m1 * 1e3, mw * 1e3, m1 / b1, mw / bw,
            median(l["warm"], "wall") * 1e3))


if __name__ == "__main__":
    main()
