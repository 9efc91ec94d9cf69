"""A TCP proxy between a PostgreSQL client and its server, for measuring and for faults.

- ``delay_s``: each chunk is held that long in each direction, so a round trip costs
  ``2 * delay_s`` more, like a network link with latency (``--rtt-ms`` of the benchmarks);
- it counts round trips: a client-to-server burst that follows a server-to-client one
  starts a new round trip (per connection, summed);
- ``drop_after_commit``: once a client sends COMMIT, the proxy forwards it to the server
  and then closes the client's side without passing on the reply: the transaction
  commits and the client cannot know (``tests/test_faults.py``).

It runs in daemon threads (``Proxy(...).start()``) or, for the benchmarks, in a process of
its own (``python benchmarks/netproxy.py``) so that its CPU does not compete with the
client's.
"""

from __future__ import annotations

import argparse
import queue
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Stats:
    round_trips: int = 0
    connections: int = 0
    commits_dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.round_trips, self.connections


class Proxy:
    """Threads, not asyncio: an event loop's timers round to the millisecond, where the
    delay of a 1 ms round trip is 0.5 ms each way; ``time.sleep`` is precise to ~0.1 ms."""

    def __init__(self, target_host: str, target_port: int, *, listen_port: int = 0,
                 delay_s: float = 0.0):
        self.target = (target_host, target_port)
        self.delay_s = delay_s
        self.stats = Stats()
        self.drop_after_commit = False  # arm for the next COMMIT seen, any connection
        self._listener = socket.create_server(("127.0.0.1", listen_port))
        self.listen_port = self._listener.getsockname()[1]
        self._closed = False

    def start(self) -> Proxy:
        threading.Thread(target=self.serve, name="netproxy", daemon=True).start()
        return self

    def serve(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.stats.lock:
                self.stats.connections += 1
            state = {"last": "server", "dropping": False}
            for src, dst, from_client in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, state, from_client),
                                 daemon=True).start()

    def stop(self) -> None:
        self._closed = True
        self._listener.close()

    def _pump(self, src: socket.socket, dst: socket.socket, state: dict,
              from_client: bool) -> None:
        """Copy one direction, each chunk held ``delay_s`` (a writer thread keeps order)."""
        pending: queue.SimpleQueue = queue.SimpleQueue()
        if self.delay_s:
            threading.Thread(target=self._deliver, args=(pending, dst), daemon=True).start()
        try:
            while data := src.recv(65536):
                if from_client:
                    if state["last"] == "server":
                        with self.stats.lock:
                            self.stats.round_trips += 1
                    state["last"] = "client"
                    if self.drop_after_commit and b"COMMIT" in data:
                        self.drop_after_commit = False
                        state["dropping"] = True
                        with self.stats.lock:
                            self.stats.commits_dropped += 1
                else:
                    state["last"] = "server"
                    if state["dropping"]:
                        break  # the client never hears how COMMIT went
                if self.delay_s:
                    pending.put((time.monotonic() + self.delay_s, data))
                else:
                    dst.sendall(data)
        except OSError:
            pass
        if self.delay_s:
            pending.put(None)
        else:
            _close(src, dst)

    @staticmethod
    def _deliver(pending: queue.SimpleQueue, dst: socket.socket) -> None:
        try:
            while (item := pending.get()) is not None:
                due, data = item
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                dst.sendall(data)
        except OSError:
            pass
        _close(dst)


def _close(*sockets: socket.socket) -> None:
    for s in sockets:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", help="host:port of the server")
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="added round-trip time")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    proxy = Proxy(host, int(port), listen_port=args.listen_port, delay_s=args.rtt_ms / 2000)
    print(proxy.listen_port, flush=True)
    proxy.serve()


if __name__ == "__main__":
    main()
