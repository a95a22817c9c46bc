#!/usr/bin/env python3
"""Roles that build real TCP connection patterns, for connleak's integration tests and benchmark.

Each role runs inside a network namespace (started with `ip netns exec NS python3 roles.py ROLE
--ready FILE ...`), sets up its sockets, then writes FILE (JSON with its pid and what it built) and
stays alive holding them until killed. The tests read FILE to know when the pattern is in place and
which pid to expect in connleak's report.
"""
import argparse
import itertools
import json
import os
import resource
import select
import selectors
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


TCP_FIN_WAIT2 = 5  # the kernel's TCP_FIN_WAIT2, first byte of struct tcp_info


def tcp_state(c):
    return c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def ready(path, **info):
    info["pid"] = os.getpid()
    with open(path + ".tmp", "w") as f:
        json.dump(info, f)
    os.rename(path + ".tmp", path)


def forever():
    threading.Event().wait()


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listener(host, port, backlog=4096, reuseport=False):
    """A listening socket; on "::" dual-stack (IPV6_V6ONLY off), as Java and Go listen."""
    s = socket.socket(family(host))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if host == "::":
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((host, port))
    s.listen(backlog)
    return s


def connect(host, port, src=None):
    c = socket.socket(family(host))
    if src:
        c.bind((src, 0))
    c.settimeout(5)
    c.connect((host, port))
    return c


# What a hostile process calls itself: terminal escapes (clear screen, set the window title),
# a newline, quotes, a backslash and bytes that are not UTF-8; the kernel keeps 15 bytes of comm.
HOSTILE_COMM = b'\x1b[2J\n"q\\\xff\xfez'
HOSTILE_ARGV0 = b'\x1b]2;owned\x07srv\n"quoted" \\back\xff'
HOSTILE_ARG = b"\x1b[31m" + b"A\\\"\n" * 1024  # 4 KiB and then some


def hostile_names(a):
    """With --hostile: re-executes this script under a hostile argv[0] and a 4 KiB argument, then
    renames itself; says what /proc shows of it (hex) in the ready file."""
    if not a.hostile:
        return {}
    if os.environ.get("ROLES_HOSTILE") != "1":
        os.environ["ROLES_HOSTILE"] = "1"
        args = [os.fsencode(x) for x in sys.argv[1:]]
        os.execv(sys.executable, [HOSTILE_ARGV0, os.fsencode(__file__), *args, b"--label", HOSTILE_ARG])
    with open("/proc/self/comm", "wb") as f:
        f.write(HOSTILE_COMM)
    shown = {}
    for name in ("comm", "cmdline"):
        with open("/proc/self/" + name, "rb") as f:
            shown[name + "_hex"] = f.read().hex()
    return shown


def role_leak_server(a):
    """Reads each connection to EOF, then forgets to close it: the classic CLOSE_WAIT leak.
    With --hostile it first takes a hostile name (see hostile_names); --backlog sets the listen
    backlog (default 4096)."""
    names = hostile_names(a)
    if a.nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (a.nofile, a.nofile))
    ls = listener(a.host, a.port, backlog=a.backlog or 4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ)
    kept = []
    ready(a.ready, port=a.port, **names)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is ls:
                try:
                    c, _ = ls.accept()
                except OSError:
                    time.sleep(0.05)
                    continue
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:  # EOF: the bug is that s.close() is never called
                sel.unregister(s)
                kept.append(s)


def role_reset_server(a):
    """Serves --n connections of its own clients: each client sends a request and closes; the
    server reads to EOF, then writes its reply anyway. The client's orphaned FIN_WAIT2 socket
    answers with RST, the server's socket goes to CLOSE and leaves the TCP table. --kind leak
    never closes it (the fd stays); --kind close closes it as it should. The listener is closed
    at the end, so that with --kind leak the process holds only these sockets."""
    ls = listener(a.host, a.port)
    kept = []
    for _ in range(a.n):
        c = connect(a.host, a.port)
        s, _ = ls.accept()
        c.sendall(b"GET / HTTP/1.1\r\n\r\n")
        c.close()
        while s.recv(65536):
            pass
        s.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        # The RST comes back at once over loopback; wait for the state to say so.
        while s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != 7:  # TCP_CLOSE
            time.sleep(0.01)
        if a.kind == "close":
            s.close()
        else:
            kept.append(s)
    ls.close()
    ready(a.ready, port=a.port, n=len(kept))
    forever()


def role_clients(a):
    """N clients of one --kind: close (send a request, wait --wait s, close), idle (connect and
    send nothing), halfclose (send a line, shutdown(SHUT_WR), keep the socket), send (send a
    request and keep the connection open, waiting for the answer)."""
    conns = [connect(a.host, a.port) for _ in range(a.n)]
    if a.kind != "idle":
        for c in conns:
            c.sendall(b"GET / HTTP/1.1\r\n\r\n")
    if a.kind == "close":
        time.sleep(a.wait)
        for c in conns:
            c.close()
        conns = []
    elif a.kind == "halfclose":
        for c in conns:
            c.shutdown(socket.SHUT_WR)
        # The server may delay its ACK of the FIN: ready once every socket is in FIN-WAIT-2.
        while any(tcp_state(c) != TCP_FIN_WAIT2 for c in conns):
            time.sleep(0.01)
    ready(a.ready, port=a.port, n=a.n)
    forever()


def role_pool_server(a):
    """Accepts on the main thread and hands each connection to a fixed pool of --n workers.
    Each worker blocks reading its client (idle clients exhaust the pool), or with --kind lock
    first waits for a lock that a stuck thread never releases."""
    pool = ThreadPoolExecutor(max_workers=a.n, thread_name_prefix="worker")
    ls = listener(a.host, a.port)
    stuck = threading.Lock()
    if a.kind == "lock":
        stuck.acquire()  # held forever, as by a thread stuck on a dead dependency

    def handle(c):
        with stuck if a.kind == "lock" else threading.Lock():
            pass
        data = c.recv(1024)
        if data:
            c.sendall(b"ok\n")
        c.close()

    ready(a.ready, port=a.port, workers=a.n)
    while True:
        c, _ = ls.accept()
        pool.submit(handle, c)


def role_backlog_server(a):
    """Listens with backlog --n, accepts --churn connections, then never accepts again."""
    ls = listener(a.host, a.port, backlog=a.n)
    ready(a.ready, port=a.port, backlog=a.n)
    held = [ls.accept()[0] for _ in range(a.churn)]
    forever()


def serve_threaded(a, handle):
    """Listens on --host/--port, says ready, and runs handle(conn) in a thread per connection."""
    ls = listener(a.host, a.port)
    ready(a.ready, port=a.port)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def role_closing_server(a):
    """Accepts connections and closes each one after --wait seconds (a server's idle timeout)."""

    def handle(c):
        time.sleep(a.wait)
        c.close()

    serve_threaded(a, handle)


def role_http10_server(a):
    """Reads a request, answers and closes first, as an HTTP/1.0 server does."""

    def handle(c):
        c.recv(1024)
        c.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
        c.close()

    serve_threaded(a, handle)


def role_idle_pool(a):
    """A client connection pool: N connections opened and then never read again."""
    pool = [connect(a.host, a.port) for _ in range(a.n)]
    ready(a.ready, port=a.port, n=len(pool))
    forever()


def echo(c):
    """Echoes until EOF, then closes."""
    with c:
        while True:
            data = c.recv(65536)
            if not data:
                return
            c.sendall(data)


def role_echo_server(a):
    """A well-behaved threaded echo server: closes when the client closes."""
    serve_threaded(a, echo)


def role_healthy_clients(a):
    """Long-lived echo clients that talk now and then, plus short connections closed properly."""
    held = [connect(a.host, a.port) for _ in range(a.n)]
    for c in held:
        c.sendall(b"ping\n")
        c.recv(64)
    for _ in range(a.churn):
        c = connect(a.host, a.port)
        c.sendall(b"hello\n")
        c.recv(64)
        c.close()
    ready(a.ready, port=a.port, n=a.n, churn=a.churn)
    while True:
        time.sleep(0.5)
        for c in held:
            c.sendall(b"ping\n")
            c.recv(64)


def role_holder(a):
    """Holds --n loopback connections (both ends) in this one process, for the benchmark."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (a.n * 2 + 64, a.n * 2 + 64))
    ls = listener("0.0.0.0", a.port)
    socks = []
    for i in range(a.n):
        # Spread over source addresses so that no (source, destination) runs out of ports.
        src = "127.%d.%d.%d" % (1 + a.index % 200, (i // 20000) % 250, 1 + (i // 250) % 80)
        socks.append(connect("127.0.0.1", a.port, src=src))
        socks.append(ls.accept()[0])
    ready(a.ready, port=a.port, n=a.n)
    forever()


def role_churn(a):
    """Short connections: send a byte, read the answer, close. Against an echo server the client
    closes first (TIME_WAIT here); with --kind eof it reads until the server closes first; with
    --kind send it closes without waiting for an answer (a leak that grows steadily). Opens
    --n of them and says ready (0: forever, ready at once), holding one long-lived connection."""
    held = connect(a.host, a.port)
    if not a.n:
        ready(a.ready, port=a.port)
    done = 0
    while not a.n or done < a.n:
        try:
            c = connect(a.host, a.port)
            c.sendall(b"x")
            if a.kind == "eof":  # the server closes first: read until its FIN
                while c.recv(65536):
                    pass
            elif a.kind == "send":  # do not wait for an answer
                pass
            else:
                c.recv(8)
            c.close()
            done += 1
        except OSError:
            time.sleep(0.01)
        if a.wait:
            time.sleep(a.wait)
    ready(a.ready, port=a.port, n=done)
    forever()


def role_spawner(a):
    """Forks about --n short-lived clients a second, forever. Each connects, sends a byte and reads
    the answer; then one in three closes and exits, one in three exits with the connection open
    (the kernel closes it), and one in three executes `sleep` with the connection inherited (the
    process changes its name and its fd table mid-life)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    ready(a.ready, port=a.port)
    for i in itertools.count():
        if os.fork() == 0:
            try:
                c = connect(a.host, a.port)
                c.sendall(b"x")
                c.recv(8)
                if i % 3 == 1:
                    c.close()
                elif i % 3 == 2:
                    c.set_inheritable(True)
                    os.execv("/bin/sleep", ["sleep", "0.05"])
            finally:
                os._exit(0)
        time.sleep(1 / a.n)


def role_flapper(a):
    """Opens --n connections, closes them all, again and again: fds come and go under the scan."""
    ready(a.ready, port=a.port)
    while True:
        conns = []
        for _ in range(a.n):
            try:
                conns.append(connect(a.host, a.port))
            except OSError:
                time.sleep(0.01)
        for c in conns:
            c.close()


def leak_accepted(ls, n):
    """Accepts n connections and reads each to EOF, never closing them; returns them."""
    kept = [ls.accept()[0] for _ in range(n)]
    for c in kept:
        while c.recv(65536):
            pass
    return kept


def role_reuseport_server(a):
    """One of several processes listening on the same port with SO_REUSEPORT, each with its own
    socket and queue (backlog --n): with --kind stuck it never accepts, otherwise it echoes."""
    ls = listener(a.host, a.port, backlog=a.n, reuseport=True)
    ready(a.ready, port=a.port)
    if a.kind == "stuck":
        forever()
    while True:
        c, _ = ls.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()


def role_connect_many(a):
    """Tries --n connections, each given --wait s to complete, and keeps those that did (a full
    accept queue drops the others' handshakes)."""
    held = []
    for _ in range(a.n):
        c = socket.socket(family(a.host))
        c.settimeout(a.wait)
        try:
            c.connect((a.host, a.port))
            held.append(c)
        except OSError:
            c.close()
    ready(a.ready, port=a.port, n=len(held))
    forever()


def role_prefork_server(a):
    """A prefork server: the parent listens (backlog --backlog, default 4096) and forks --workers
    workers that accept from the same socket. --kind leak: each worker accepts --n connections,
    reads them to EOF, never closes them and accepts no more; the parent then connects and closes
    --churn clients itself and says ready once every worker has its --n. Otherwise each worker
    echoes and closes on EOF, forever. The ready file lists the workers' pids."""
    ls = listener(a.host, a.port, backlog=a.backlog or 4096)
    done_r, done_w = os.pipe()
    workers = []
    for _ in range(a.workers):
        pid = os.fork()
        if pid == 0:
            os.close(done_r)
            if a.kind == "leak":
                kept = leak_accepted(ls, a.n)
                os.write(done_w, b"x")
                forever()
            while True:
                c, _ = ls.accept()
                threading.Thread(target=echo, args=(c,), daemon=True).start()
        workers.append(pid)
    os.close(done_w)
    if a.kind == "leak":
        for _ in range(a.churn):
            c = connect(a.host, a.port)
            c.sendall(b"x")
            c.close()
        for _ in range(a.workers):
            os.read(done_r, 1)
    ready(a.ready, port=a.port, workers=workers)
    forever()


def role_inherit_leak(a):
    """Leaks --n connections to itself (read to EOF, never closed), then starts a child that
    inherits them (no close-on-exec) and sleeps: each leaked socket has two holders."""
    ls = listener(a.host, a.port)
    clients = [connect(a.host, a.port) for _ in range(a.n)]
    for c in clients:
        c.close()
    kept = leak_accepted(ls, a.n)
    for c in kept:
        c.set_inheritable(True)
    child = os.fork()
    if child == 0:
        os.execv("/bin/sleep", ["sleep", "infinity"])
    ready(a.ready, port=a.port, child=child)
    forever()


def role_closing_servers(a):
    """--count servers on ports --port, --port+1, ... each closing every connection after --wait s."""
    for port in range(a.port, a.port + a.count):
        ls = listener(a.host, port)

        def serve(ls=ls):
            while True:
                c, _ = ls.accept()
                threading.Timer(a.wait, c.close).start()

        threading.Thread(target=serve, daemon=True).start()
    ready(a.ready, port=a.port)
    forever()


def role_spread_pool(a):
    """A client pool of --n connections toward each of --count servers (ports --port, --port+1,
    ...) that it never reads again; ready once every server has closed its end (the socket is
    readable: the FIN waits unread)."""
    pool = [connect(a.host, port) for port in range(a.port, a.port + a.count) for _ in range(a.n)]
    waiting = list(pool)
    while waiting:
        readable, _, _ = select.select(waiting, [], [])
        waiting = [c for c in waiting if c not in readable]
    ready(a.ready, port=a.port, n=len(pool))
    forever()


def role_netns_hopper(a):
    """Holds a listener and --n loopback connections (both ends) of the namespace it starts in,
    then moves into the `ip netns` namespace --label and holds one more connection there: a
    process of one namespace holding sockets of another."""
    import ctypes
    ls = listener("127.0.0.1", a.port)
    held = [ls]
    for _ in range(a.n):
        held.append(connect("127.0.0.1", a.port))
        held.append(ls.accept()[0])
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/run/netns/" + a.label) as ns:
        if libc.setns(ns.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns")
    there = listener("127.0.0.1", a.port + 1)
    held += [there, connect("127.0.0.1", a.port + 1), there.accept()[0]]
    ready(a.ready, port=a.port)
    forever()


ROLES = {name[5:]: fn for name, fn in globals().items() if name.startswith("role_")}


def main():
    # They import this file's helpers, so not at the top.
    from client_roles import CLIENT_ROLES
    from incident_roles import INCIDENT_ROLES

    roles = {**ROLES, **CLIENT_ROLES, **INCIDENT_ROLES}
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("role", choices=sorted(roles))
    p.add_argument("--ready", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--churn", type=int, default=0)
    p.add_argument("--kind", default="close")
    p.add_argument("--wait", type=float, default=0.2)
    p.add_argument("--nofile", type=int, default=0)
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--backlog", type=int, default=0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--hostile", action="store_true")
    p.add_argument("--label", default="")
    a = p.parse_args()
    roles[a.role](a)


if __name__ == "__main__":
    main()
