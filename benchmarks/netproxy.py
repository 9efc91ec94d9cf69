"""A TCP proxy between a PostgreSQL client and its server, for measuring and for faults.

- ``delay_s``: each chunk is held that long in each direction, so a round trip costs
  ``2 * delay_s`` more, like a network link with latency (``--rtt-ms`` of the benchmarks);
- it counts round trips: a client-to-server burst that follows a server-to-client one
  starts a new round trip (per connection, summed);
- ``drop_after_commit``: once a client sends COMMIT, the proxy forwards it to the server
  and then closes the client's side without passing on the reply: the transaction
  commits and the client cannot know (``tests/integration/test_faults.py``);
- ``close_after_commit_reply``: once a client sends COMMIT, its connection is closed
  right after the server's reply to it is passed on: the client reads how COMMIT went,
  then finds the connection gone;
- ``silent``: everything received is dropped, on every connection, new ones included (a
  cancel request too): the server seems to hang with the connections open.

One thread serves every connection with ``select()``, whose timeout has microsecond
resolution (``epoll``'s and an event loop's timers round to the millisecond, where the
delay of a 1 ms round trip is 0.5 ms each way). One thread, not four per connection: on
a small machine the proxy's CPU competes with the client's and the server's, and a
thread per direction spent about as much CPU per transfer as the client itself.

It runs in a daemon thread (``Proxy(...).start()``) or, for the benchmarks, in a process
of its own (``python benchmarks/netproxy.py``).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

IDLE_WAIT_S = 0.05  # how soon ``stop()`` is noticed when nothing is due


@dataclass
class Stats:
    round_trips: int = 0
    connections: int = 0
    commits_dropped: int = 0
    late_s_sum: float = 0.0  # how much later than due the delayed chunks were passed on
    late_count: int = 0
    late_s_max: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.round_trips, self.connections

    def lateness(self) -> str:
        """How faithful the delay was: chunks passed on later than due, mean and max."""
        mean = self.late_s_sum / self.late_count if self.late_count else 0.0
        return (f"{self.late_count} delayed chunks passed on {mean * 1e6:.0f} µs late on "
                f"average (max {self.late_s_max * 1e6:.0f} µs)")


@dataclass(eq=False)
class _Pair:
    """One proxied connection: the client's socket and the server's."""

    client: socket.socket
    server: socket.socket
    last: str = "server"  # who spoke last: a client burst after the server's is a round trip
    dropping: bool = False
    closing_after_reply: bool = False


@dataclass(eq=False)
class _Side:
    """One socket of a pair: what is owed to it, and where its own data goes."""

    pair: _Pair
    sock: socket.socket
    peer: socket.socket
    from_client: bool
    out: bytearray = field(default_factory=bytearray)
    closing: bool = False  # close once ``out`` is sent


class Proxy:
    def __init__(self, target_host: str, target_port: int, *, listen_port: int = 0,
                 delay_s: float = 0.0):
        self.target = (target_host, target_port)
        self.delay_s = delay_s
        self.stats = Stats()
        self.drop_after_commit = False  # arm for the next COMMIT seen, any connection
        self.close_after_commit_reply = False  # arm for the next COMMIT seen
        self.silent = False  # drop whatever arrives, both ways
        self._listener = socket.create_server(("127.0.0.1", listen_port))
        self._listener.setblocking(False)
        self.listen_port = self._listener.getsockname()[1]
        self._closed = False
        self._sides: dict[socket.socket, _Side] = {}
        self._due: list[tuple[float, int, socket.socket, bytes | None]] = []
        self._seq = itertools.count()

    def start(self) -> Proxy:
        threading.Thread(target=self.serve, name="netproxy", daemon=True).start()
        return self

    def stop(self) -> None:
        """No new connections; those open keep being served."""
        self._closed = True

    def serve(self) -> None:
        while not self._closed or self._sides:
            if self._closed and self._listener.fileno() >= 0:
                self._listener.close()
            readers = [s for s, side in self._sides.items() if not side.closing]
            if not self._closed:
                readers.append(self._listener)
            writers = [s for s, side in self._sides.items() if side.out]
            wait = IDLE_WAIT_S
            if self._due:
                wait = min(wait, max(0.0, self._due[0][0] - time.monotonic()))
            try:
                readable, writable, _ = select.select(readers, writers, [], wait)
            except (OSError, ValueError):  # a socket closed under us: look again
                readable, writable = [], []
            for sock in readable:
                if sock is self._listener:
                    self._accept()
                else:
                    self._receive(sock)
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                due, _, sock, data = heapq.heappop(self._due)
                stats = self.stats
                stats.late_s_sum += now - due
                stats.late_count += 1
                stats.late_s_max = max(stats.late_s_max, now - due)
                self._owe(sock, data)
            for sock in writable:
                self._send(sock)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        try:
            server = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        pair = _Pair(client, server)
        for sock, peer, from_client in ((client, server, True), (server, client, False)):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self._sides[sock] = _Side(pair, sock, peer, from_client)
        with self.stats.lock:
            self.stats.connections += 1

    def _receive(self, sock: socket.socket) -> None:
        side = self._sides.get(sock)
        if side is None:
            return
        try:
            data: bytes | None = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        pair = side.pair
        if data and self.silent:
            return
        if data and side.from_client:
            if pair.last == "server":
                with self.stats.lock:
                    self.stats.round_trips += 1
            pair.last = "client"
            if self.drop_after_commit and b"COMMIT" in data:
                self.drop_after_commit = False
                pair.dropping = True
                with self.stats.lock:
                    self.stats.commits_dropped += 1
            if self.close_after_commit_reply and b"COMMIT" in data:
                self.close_after_commit_reply = False
                pair.closing_after_reply = True
        elif data:
            pair.last = "server"
            if pair.dropping:
                self._close_pair(pair)  # the client never hears how COMMIT went
                return
            if pair.closing_after_reply:  # the reply goes out, then the connection goes
                self._sides[sock].closing = True
                self._owe(side.peer, data)
                self._owe(side.peer, None)
                return
        if not data:
            data = None  # end of stream: the peer is closed once what it is owed is sent
            self._sides[sock].closing = True
        if self.delay_s:
            heapq.heappush(self._due, (time.monotonic() + self.delay_s, next(self._seq),
                                       side.peer, data))
        else:
            self._owe(side.peer, data)

    def _owe(self, sock: socket.socket, data: bytes | None) -> None:
        side = self._sides.get(sock)
        if side is None:
            return
        if data is None:
            side.closing = True
        else:
            side.out += data
        self._send(sock)

    def _send(self, sock: socket.socket) -> None:
        side = self._sides.get(sock)
        if side is None:
            return
        try:
            if side.out:
                sent = sock.send(side.out)
                del side.out[:sent]
        except BlockingIOError:
            return
        except OSError:
            self._close_pair(side.pair)
            return
        if side.closing and not side.out:
            self._close_pair(side.pair)

    def _close_pair(self, pair: _Pair) -> None:
        for sock in (pair.client, pair.server):
            if self._sides.pop(sock, None) is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", help="host:port of the server")
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="added round-trip time")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    proxy = Proxy(host, int(port), listen_port=args.listen_port, delay_s=args.rtt_ms / 2000)
    print(proxy.listen_port, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        proxy.serve()
    finally:  # the last line of output: how faithful the link was
        print(proxy.stats.lateness(), flush=True)


if __name__ == "__main__":
    main()
