"""A deadline for the work on one connection: a Lambda's remaining time, enforced client-side.

Server-side timeouts (``statement_timeout``, ``lock_timeout``) bound a statement, but not
by the caller's clock, and not at all if the server stops answering. ``guard(conn, t)``
registers a psycopg connection with a deadline (a ``time.monotonic()`` value); one
daemon thread checks the guarded connections every ``TICK_S`` and, past a deadline,
cancels the running statement (the caller gets SQLSTATE 57014, a ``DatabaseTimeout``)
and, if the server does not answer the cancel within ``CANCEL_GRACE_S``, shuts the socket
down (the caller gets a connection error). So no wait lasts longer than
``LONGEST_OVERRUN_S`` past its deadline; a Lambda handler's deadline leaves more than that
of its remaining time (``bank.handlers.common.DEADLINE_MARGIN_S``). A guard costs a
dictionary insert and delete: nothing per statement, no thread per request (a cancel,
which waits for the server, runs in a thread of its own).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the handlers read LONGEST_OVERRUN_S at import, psycopg or not
    import psycopg

TICK_S = 0.05
CANCEL_GRACE_S = 0.4  # after a cancel, how long the server has to answer before the socket goes
#: The most a guarded wait can last past its deadline: a tick to notice it, the grace, a
#: tick to notice that.
LONGEST_OVERRUN_S = CANCEL_GRACE_S + 2 * TICK_S


class _Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guarded: dict[int, tuple[float, psycopg.Connection, list[bool]]] = {}
        self._thread: threading.Thread | None = None

    def add(self, conn: psycopg.Connection, deadline: float) -> int:
        token = id(conn)
        with self._lock:
            self._guarded[token] = (deadline, conn, [False])
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="bank-deadline",
                                                daemon=True)
                self._thread.start()
        return token

    def remove(self, token: int) -> None:
        with self._lock:
            self._guarded.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(TICK_S)
            now = time.monotonic()
            with self._lock:
                due = [(t, d, c, s) for t, (d, c, s) in self._guarded.items() if d <= now]
            for token, deadline, conn, cancelled in due:
                if not cancelled[0]:
                    cancelled[0] = True
                    threading.Thread(target=_cancel, args=(conn,), name="bank-cancel",
                                     daemon=True).start()
                elif now >= deadline + CANCEL_GRACE_S:
                    _shut(conn)
                    self.remove(token)


def _cancel(conn: psycopg.Connection) -> None:
    with contextlib.suppress(Exception):
        conn.cancel_safe(timeout=CANCEL_GRACE_S)


def _shut(conn: psycopg.Connection) -> None:
    """Unblock a thread waiting on a server that no longer answers."""
    with contextlib.suppress(Exception):
        fd = os.dup(conn.pgconn.socket)
        with socket.socket(fileno=fd) as sock:
            sock.shutdown(socket.SHUT_RDWR)


_watchdog = _Watchdog()


@contextlib.contextmanager
def guard(conn: psycopg.Connection, deadline: float | None) -> Iterator[None]:
    """Within the block, work on ``conn`` is stopped at ``deadline`` (monotonic seconds)."""
    if deadline is None:
        yield
        return
    token = _watchdog.add(conn, deadline)
    try:
        yield
    finally:
        _watchdog.remove(token)
