"""Roles for the incident tests (loaded by roles.py): a server that writes without end to every
connection, a server that reads and discards, a SYN flood from spoofed sources that never
complete their handshakes, and a client that keeps its sockets after connect() fails.
"""
import random
import socket
import struct
import threading
import time

from roles import forever, listener, ready, tcp_state

TCP_CLOSE = 7


def role_write_server(a):
    """Accepts connections and writes to each without end, a thread per connection: toward a
    client that does not read, every writer blocks in sendto()."""
    ls = listener(a.host, a.port)
    ready(a.ready, port=a.port)

    def write(c):
        try:
            while True:
                c.sendall(b"x" * 65536)
        except OSError:
            forever()  # keep the socket, as a server blocked on a peer would

    while True:
        c, _ = ls.accept()
        threading.Thread(target=write, args=(c,), daemon=True).start()


def role_discard_server(a):
    """Accepts connections and reads everything they send, a thread per connection."""
    ls = listener(a.host, a.port)
    ready(a.ready, port=a.port)

    def drain(c):
        while c.recv(65536):
            pass

    while True:
        c, _ = ls.accept()
        threading.Thread(target=drain, args=(c,), daemon=True).start()


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def syn(src, dst, sport, dport, ident):
    """An IPv4 packet holding one TCP SYN from src:sport to dst:dport."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, random.randrange(1 << 32), 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ident & 0xFFFF, 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp


def role_syn_flood(a):
    """Sends --n SYNs to --host:--port from spoofed sources in the /16 --label (10.99), whose
    SYN-ACKs go nowhere: each leaves a half-open handshake until the server gives up on it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for i in range(a.n):
        src = "%s.%d.%d" % (a.label, 1 + i // 250 % 250, 1 + i % 250)
        s.sendto(syn(src, a.host, 10000 + i % 50000, a.port, i), (a.host, 0))
    ready(a.ready, port=a.port, n=a.n)
    forever()


def role_failed_connects(a):
    """Connects --n times toward --host:--port, where nothing answers or a reset refuses: half
    blocking connect() calls (a thread each; the kernel forgets the port when one fails), half
    non-blocking ones left to fail on their own. --kind keep holds every socket after its
    connect failed, as a client that forgets close() on its error path; --kind close closes it."""
    kept = []

    def blocking():
        c = socket.socket()
        try:
            c.connect((a.host, a.port))
        except OSError:
            pass
        kept.append(c)

    threads = [threading.Thread(target=blocking) for _ in range(a.n // 2)]
    for t in threads:
        t.start()
    pending = []
    for _ in range(a.n - a.n // 2):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex((a.host, a.port))
        pending.append(c)
    for t in threads:
        t.join()
    while any(tcp_state(c) != TCP_CLOSE for c in pending):
        time.sleep(0.1)
    kept.extend(pending)
    if a.kind == "close":
        for c in kept:
            c.close()
        kept.clear()
    ready(a.ready, port=a.port, n=a.n)
    forever()


def role_shutdown_keeper(a):
    """Opens --n connections to --host:--port (an echo server that closes on EOF), sends a line,
    half-closes with shutdown(SHUT_WR), reads the answer to EOF, and keeps every socket: the
    connection ends in order both ways (TIME-WAIT takes over), and only close() is missing."""
    kept = []
    for _ in range(a.n):
        c = socket.create_connection((a.host, a.port))
        c.sendall(b"bye\n")
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass
        kept.append(c)
    while any(tcp_state(c) != TCP_CLOSE for c in kept):
        time.sleep(0.05)
    ready(a.ready, port=a.port, n=a.n)
    forever()


INCIDENT_ROLES = {name[5:]: fn for name, fn in globals().items() if name.startswith("role_")}
