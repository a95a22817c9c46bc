"""Client-side roles for connleak's tests (loaded by roles.py): a TLS connection pool left idle, a
steady keep-alive request loop, a threaded HTTP/1.1 backend, a receiver that never reads and a
sender that fills its window, and connection attempts toward a destination that never answers.
"""
import http.client
import http.server
import socket
import ssl
import threading
import time

from roles import connect, forever, listener, ready


def retry(fn, seconds=20):
    """fn() until it stops raising OSError (the server may still be starting)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def insecure_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def role_tls_pool(a):
    """A client pool of --n HTTPS keep-alive connections: one request each, then never read again
    (urllib3's HTTPSConnectionPool when importable, else http.client)."""
    ctx = insecure_context()
    try:
        import urllib3

        urllib3.disable_warnings()  # the test's certificate is self-signed on purpose
        pool = urllib3.HTTPSConnectionPool(a.host, a.port, maxsize=a.n, ssl_context=ctx, retries=False)
        retry(lambda: pool.urlopen("GET", "/").data)
        # Held responses keep their connections out of the pool, so n distinct ones are opened
        # (the first reuses the connection of the request above).
        held = [pool.urlopen("GET", "/", preload_content=False) for _ in range(a.n)]
        for r in held:
            r.read()
            r.release_conn()
        client, conns = "urllib3 " + urllib3.__version__, pool
    except ImportError:
        client, conns = "http.client", []
        for _ in range(a.n):
            c = http.client.HTTPSConnection(a.host, a.port, context=ctx)
            retry(lambda: (c.request("GET", "/"), c.getresponse().read()))
            conns.append(c)
    ready(a.ready, port=a.port, n=a.n, client=client)
    forever()


class Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def role_http_backend(a):
    """A threaded HTTP/1.1 keep-alive server (a thread per connection)."""
    srv = http.server.ThreadingHTTPServer((a.host, a.port), Backend)
    ready(a.ready, port=a.port)
    srv.serve_forever()


def role_request_loop(a):
    """A keep-alive client sending a steady stream of requests for --wait seconds (ready after the
    first answer), about --n a second, then holding its connection."""
    c = http.client.HTTPConnection(a.host, a.port, timeout=5)
    get = lambda: (c.request("GET", "/"), c.getresponse().read())
    retry(get)
    ready(a.ready, port=a.port)
    end = time.monotonic() + a.wait
    while time.monotonic() < end:
        get()
        time.sleep(1 / a.n)
    forever()


def role_unread_sink(a):
    """Accepts connections into a small receive buffer and never reads them."""
    ls = socket.socket(socket.AF_INET)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted sockets
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(128)
    ready(a.ready, port=a.port)
    held = []
    while True:
        held.append(ls.accept()[0])


def role_window_filler(a):
    """Opens --n connections, sends until the peer's window is full, then shuts down its side:
    each FIN waits behind unsent data (FIN-WAIT-1) that the peer never reads."""
    conns = [retry(lambda: connect(a.host, a.port)) for _ in range(a.n)]
    for c in conns:
        c.setblocking(False)
        try:
            while True:
                c.send(b"x" * 65536)
        except BlockingIOError:
            pass
        c.shutdown(socket.SHUT_WR)
    ready(a.ready, port=a.port, n=a.n)
    forever()


def role_blocked_writers(a):
    """Opens --n connections, each with a thread that writes to it without end: once the peer's
    window is full, each thread blocks in sendto()."""
    conns = [retry(lambda: connect(a.host, a.port)) for _ in range(a.n)]

    def write(c):
        c.settimeout(None)
        while True:
            c.sendall(b"x" * 65536)

    for i, c in enumerate(conns):
        threading.Thread(target=write, args=(c,), name="writer-%d" % i, daemon=True).start()
    ready(a.ready, port=a.port, n=a.n)
    forever()


def role_syn_burst(a):
    """Starts --n non-blocking connects toward --host:--port and keeps them waiting."""
    conns = []
    for _ in range(a.n):
        c = socket.socket(socket.AF_INET6 if ":" in a.host else socket.AF_INET)
        c.setblocking(False)
        err = c.connect_ex((a.host, a.port))
        if err not in (0, 115):  # EINPROGRESS
            raise OSError(err, "connect")
        conns.append(c)
    ready(a.ready, port=a.port, n=a.n)
    forever()


CLIENT_ROLES = {name[5:]: fn for name, fn in globals().items() if name.startswith("role_")}
