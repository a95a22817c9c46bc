#!/usr/bin/env python3
"""What `connleak trace` costs the traced: a tight loopback connect/accept/close loop, timed
untraced and traced, and the ratio.

    sudo python3 benches/trace_overhead.py                    # 5 rounds of 100,000 cycles
    sudo python3 benches/trace_overhead.py --cycles 50000 --rounds 3

Needs root, gcc and iproute2. Builds benches/trace_loop.c with gcc, then in a fresh private
network namespace runs it --rounds times untraced and --rounds times under `connleak trace
--netns NS` (started a moment before, ended after), alternately, so that both see the same
machine load. Prints the median time a cycle in each case, wall and CPU (the loop's own, user
and system: the programs run in its system calls), and their ratios (the target is 1.25 at most);
on a busy machine the CPU time is the steadier figure. Every birth is recorded and every close counted, so this is the worst case: a
real service does more between two connections. This is a measurement, not a test: it never
fails on a figure.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BINARY = os.path.join(ROOT, "target", "release", "connleak")
TARGET = 1.25


def build(tmp):
    out = os.path.join(tmp, "trace_loop")
    subprocess.run(["gcc", "-O2", "-o", out, os.path.join(HERE, "trace_loop.c")], check=True)
    return out


def run_loop(ns, loop, cycles):
    """(wall, cpu) nanoseconds a cycle."""
    out = subprocess.run(["ip", "netns", "exec", ns, loop, str(cycles)],
                         check=True, capture_output=True, text=True)
    wall, cpu = out.stdout.split()
    return float(wall), float(cpu)


def traced(ns, binary, loop, cycles):
    tracer = subprocess.Popen([binary, "trace", "--netns", ns, "--duration", "3600"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)  # loaded, attached, first sample taken
    try:
        if tracer.poll() is not None:
            sys.exit(f"connleak trace ended early: {tracer.stderr.read().decode()}")
        return run_loop(ns, loop, cycles)
    finally:
        tracer.send_signal(signal.SIGKILL)
        tracer.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--binary", default=BINARY)
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (BPF and a network namespace)")
    ns = f"connleak-bench-{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        loop = build(tmp)
        subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
            run_loop(ns, loop, args.cycles // 10)  # warm up
            plain, under = [], []
            for _ in range(args.rounds):
                plain.append(run_loop(ns, loop, args.cycles))
                under.append(traced(ns, args.binary, loop, args.cycles))
        finally:
            subprocess.run(["ip", "netns", "del", ns])
    for i, what in enumerate(["wall", "cpu"]):
        a = statistics.median(p[i] for p in plain)
        b = statistics.median(u[i] for u in under)
        print(f"{what}: untraced {a / 1000:.2f} us a cycle, traced {b / 1000:.2f} us "
              f"(medians of {args.rounds}); ratio {b / a:.3f} (target <= {TARGET})")


if __name__ == "__main__":
    main()
