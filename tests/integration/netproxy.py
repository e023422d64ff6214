# SPDX-License-Identifier: Apache-2.0
"""
A TCP proxy on 127.0.0.1 for the client tests (test_client_lib.py): put
between a client and the broker, it makes the network fail the ways a
phone's does.

  NetProxy(target_port)   listens on a free 127.0.0.1 port (.port) and
                          forwards each connection to 127.0.0.1:target_port
                          (.target_port may be changed: the next connection
                          goes there, e.g. after a broker restart)
  .forward()              normal operation (again)
  .blackhole(up, down)    stop forwarding (client->broker when up,
                          broker->client when down) but keep every socket
                          open: a connection then dies silently, as on a
                          network that drops packets. New connections are
                          accepted and blackholed too. Bytes held back are
                          delivered in order on forward(), like TCP after a
                          network comes back.
  .drop_all()             closes every current connection now (both ends)
  .close()                stops listening and closes everything

Threads: one accept thread, and per connection one thread per direction.
Every thread polls a stop flag at least every 50 ms, so close() returns in
bounded time. Connections are bounded (max_conns accepted over the proxy's
life; beyond that new ones are closed at once).
"""

import select
import socket
import threading
import time

POLL_S = 0.05


class _Conn:
    """One proxied connection: the client's socket and ours to the target."""

    def __init__(self, proxy, client, upstream):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.lock = threading.Lock()
        self.closed = False
        self._running = 2  # pumps still running; the last one closes the sockets
        self.threads = [
            threading.Thread(target=self._pump, args=(client, upstream, "up"), daemon=True),
            threading.Thread(target=self._pump, args=(upstream, client, "down"), daemon=True),
        ]

    def start(self):
        for t in self.threads:
            t.start()

    def _pump(self, src, dst, direction):
        try:
            while not self.closed and not self.proxy._stopped:
                if direction in self.proxy._held:
                    time.sleep(POLL_S / 2)  # blackholed: leave the bytes where they are
                    continue
                r, _, _ = select.select([src], [], [], POLL_S)
                if not r or direction in self.proxy._held:
                    continue  # (held while we waited: the bytes stay where they are)
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                self.proxy.bytes[direction] += len(data)
        except OSError:
            pass
        self.close()
        with self.lock:
            self._running -= 1
            last = self._running == 0
        if last:
            self.close_sockets()

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes the other pump
            except OSError:
                pass
        # The sockets are closed by the last pump to leave (or by close_sockets()).

    def close_sockets(self):
        for s in (self.client, self.upstream):
            try:
                s.close()
            except OSError:
                pass


class NetProxy:
    def __init__(self, target_port, max_conns=500):
        self.target_port = target_port
        self.max_conns = max_conns
        self._held = set()  # directions not forwarded now: "up", "down"
        self._stopped = False
        self._lock = threading.Lock()
        self.conns = []
        self.accepted = 0
        self.bytes = {"up": 0, "down": 0}
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def uri(self):
        return f"tcp://127.0.0.1:{self.port}"

    def _accept_loop(self):
        while not self._stopped:
            r, _, _ = select.select([self._listener], [], [], POLL_S)
            if not r:
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            if self.accepted >= self.max_conns:
                client.close()
                continue
            self.accepted += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
                upstream.settimeout(None)
            except OSError:
                client.close()  # the target is down: the client sees a refused/closed connection
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Conn(self, client, upstream)
            with self._lock:
                self.conns = [x for x in self.conns if not x.closed] + [c]
            c.start()

    def live_connections(self):
        with self._lock:
            return sum(1 for c in self.conns if not c.closed)

    def forward(self):
        self._held = set()

    def blackhole(self, up=True, down=True):
        self._held = {d for d, on in (("up", up), ("down", down)) if on}

    def drop_all(self):
        """Closes every current connection; returns how many there were."""
        with self._lock:
            conns = [c for c in self.conns if not c.closed]
        for c in conns:
            c.close()
        return len(conns)

    def close(self):
        self._stopped = True
        self._thread.join(5)
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self.conns)
        for c in conns:
            c.close()
        for c in conns:
            for t in c.threads:
                t.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
