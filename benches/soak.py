#!/usr/bin/env python3
"""connleak serve's soak benchmark: thousands of refreshes on a churning namespace, RSS over time.

    sudo python3 benches/soak.py                        # 5,000 refreshes, 0.1 s apart
    sudo python3 benches/soak.py --refreshes 20000 --binary target/release/connleak

Needs root and iproute2. It builds a private network namespace with a CLOSE_WAIT leak of fixed
size (a server that never closes 200 connections) and churn that never stops: a client opening
and closing short connections to an echo server, so that every refresh sees sockets it never saw
before (TIME_WAIT comes and goes, cookies are new) while the totals stay level. It then runs
`connleak serve --netns NS --interval SECS` on a port of 127.0.0.1, scrapes /metrics and /report
a few times a second, and prints the agent's resident memory (VmRSS) every --every refreshes,
counted from its own per-refresh timing lines (CONNLEAK_TIMINGS=1).

After a warm-up (--warmup refreshes: the churn's TIME_WAIT sockets take 60 s to level off, and
the socket count with them), memory is flat when the RSS of the second half stays within a few
hundred KiB of the first half's: the window keeps one entry per live socket, the served bodies are replaced, and nothing
else outlives a refresh. This is a measurement, not a test: it never fails on a figure.
"""
import argparse
import os
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ROLES = os.path.join(ROOT, "tests", "scenarios", "roles.py")


def sh(*cmd):
    subprocess.run(cmd, check=True)


def role(ns, name, workdir, *args):
    """Starts a role of tests/scenarios/roles.py in `ns` and waits until it is ready."""
    ready = os.path.join(workdir, f"{name}-{len(os.listdir(workdir))}.json")
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, ROLES, name,
                             "--ready", ready, *args])
    while not os.path.exists(ready):
        if proc.poll() is not None:
            sys.exit(f"role {name} exited with {proc.returncode}")
        time.sleep(0.05)
    return proc


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--refreshes", type=int, default=5000)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--every", type=int, default=250, help="print RSS every N refreshes")
    p.add_argument("--warmup", type=int, default=1000,
                   help="refreshes left out of the summary: TIME_WAIT takes 60 s to level off")
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "connleak"))
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: it builds a network namespace")
    ns = f"connleak-soak-{os.getpid()}"
    workdir = f"/tmp/{ns}"
    os.makedirs(workdir, exist_ok=True)
    procs = []
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        procs.append(role(ns, "leak_server", workdir, "--port", "7001"))
        procs.append(role(ns, "clients", workdir, "--port", "7001", "--n", "200"))
        procs.append(role(ns, "echo_server", workdir, "--port", "7002"))
        procs.append(role(ns, "churn", workdir, "--port", "7002", "--n", "0", "--wait", "0.005"))
        run(a, ns)
    finally:
        for proc in procs:
            proc.kill()
        subprocess.run(["ip", "netns", "del", ns])
        subprocess.run(["rm", "-rf", workdir])


def run(a, ns):
    env = dict(os.environ, CONNLEAK_TIMINGS="1")
    agent = subprocess.Popen(
        [a.binary, "serve", "--listen", "127.0.0.1:0", "--netns", ns,
         "--interval", str(a.interval)],
        stderr=subprocess.PIPE, text=True, env=env)
    first = agent.stderr.readline()  # "connleak: serving http://ADDR/metrics, ..."
    if "http://" not in first:
        sys.exit(f"connleak serve did not start: {first}")
    url = "http://" + first.split("http://")[1].split("/")[0]
    refreshes = [0]
    failed = [0]

    def count():
        for line in agent.stderr:
            if line.startswith("connleak: timing dump "):
                refreshes[0] += 1
            elif line.startswith("connleak: collection failed"):
                failed[0] += 1

    threading.Thread(target=count, daemon=True).start()
    stop = threading.Event()
    scrapes = [0]

    def scrape():
        while not stop.is_set():
            for path in ("/metrics", "/report", "/healthz"):
                try:
                    urllib.request.urlopen(url + path, timeout=5).read()
                    scrapes[0] += 1
                except OSError:
                    pass
            time.sleep(0.2)

    threading.Thread(target=scrape, daemon=True).start()
    print(f"connleak serve --netns {ns} --interval {a.interval}: {a.refreshes} refreshes")
    print(f"{'refreshes':>10} {'seconds':>8} {'RSS KiB':>9} {'scrapes':>8} {'failed':>7}")
    started = time.monotonic()
    rows = []
    next_row = 0
    try:
        while refreshes[0] < a.refreshes:
            if agent.poll() is not None:
                sys.exit(f"the agent exited with {agent.returncode}")
            if refreshes[0] >= next_row:
                kib = rss_kib(agent.pid)
                rows.append((refreshes[0], kib))
                print(f"{refreshes[0]:>10} {time.monotonic() - started:>8.0f} {kib:>9} "
                      f"{scrapes[0]:>8} {failed[0]:>7}", flush=True)
                next_row += a.every
            time.sleep(0.05)
        kib = rss_kib(agent.pid)
        rows.append((refreshes[0], kib))
        print(f"{refreshes[0]:>10} {time.monotonic() - started:>8.0f} {kib:>9} "
              f"{scrapes[0]:>8} {failed[0]:>7}")
    finally:
        stop.set()
        agent.terminate()
        agent.wait(timeout=10)
    settled = [k for n, k in rows if n >= a.warmup]
    half = len(settled) // 2
    if half:
        first_half, second_half = settled[:half], settled[half:]
        print(f"RSS after warm-up: min {min(settled)} KiB, max {max(settled)} KiB; "
              f"mean of the first half {sum(first_half) // len(first_half)} KiB, "
              f"of the second {sum(second_half) // len(second_half)} KiB")


if __name__ == "__main__":
    main()
