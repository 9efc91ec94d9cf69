"""ch06 at scale: ``bank load``, the parallel bulk loader of UUID accounts.

The original's ``setup.sh``, ported. N worker threads each run batches of

    INSERT INTO accounts2 (balance) SELECT $1 FROM generate_series(1, $2) RETURNING id::text

one batch per transaction, at most 3,000 rows (DSQL's limit). The database generates the
ids and returns them as text: no ``uuid.UUID`` objects and no ORM rows, which would cost
more than the insert itself. Committed ids are appended to a temp file next to ``out``,
which replaces ``out`` in one ``os.replace`` at the end, also after a stop (Ctrl-C,
SIGTERM) or an error: the file appears once, complete, and lists exactly the committed rows.
It is not fsync'ed (that cost 5% of a local load): a machine crash can lose it, as a
crash during the load would lose all but the temp file's flushed lines anyway.

Connections: one engine whose pool is sized to the workers; each worker holds one
connection, replaced after ``settings.pool_recycle_s`` (DSQL closes connections at 60
minutes) and after any error (a dropped connection); on DSQL every new connection mints
a fresh IAM token, so a run may outlive any one token.

Retries: a batch that fails with SQLSTATE 40001 (DSQL's OC000 and OC001 conflicts) or loses
its connection runs again, with capped exponential backoff and jitter. If the connection
fails during COMMIT, the loader asks the database whether the batch's first id exists
before it records the batch or runs it again.

This module prints nothing and reads no environment: ``bank.cli`` does both.
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, TypeVar

import psycopg
from psycopg.rows import scalar_row
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from bank.database import make_engine
from bank.errors import BatchTooLarge, ConflictRetriesExhausted, InvalidRequest, LoadFailed
from bank.occ import RetryPolicy, sqlstate
from bank.settings import Settings
from bank.validation import parse_amount

MAX_BATCH = 3000  # Aurora DSQL: rows modified per transaction
INSERT = (
    "INSERT INTO accounts2 (balance) SELECT %s FROM generate_series(1, %s::int) RETURNING id::text"
)
EXISTS = "SELECT EXISTS (SELECT 1 FROM accounts2 WHERE id = %s::uuid)"

T = TypeVar("T")


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


@dataclass(frozen=True)
class Progress:
    rows: int
    total: int
    seconds: float

    @property
    def rate(self) -> float:
        return per_second(self.rows, self.seconds)

    @property
    def eta_s(self) -> float | None:
        return (self.total - self.rows) / self.rate if self.rate else None


@dataclass(frozen=True)
class LoadResult:
    requested: int
    rows: int
    seconds: float
    out: Path
    interrupted: bool

    @property
    def rate(self) -> float:
        return per_second(self.rows, self.seconds)

    def summary(self) -> str:
        if self.interrupted:
            what = f"interrupted: {self.rows} of {self.requested} accounts committed"
        else:
            what = f"loaded {self.rows} accounts"
        return f"{what} in {self.seconds:.2f} s ({self.rate:.0f} rows/s); ids in {self.out}"


class ConnectionLost(Exception):
    """The attempt did not commit because its connection failed; another attempt may."""


class _CommitUnknown(Exception):
    def __init__(self, ids: str):
        super().__init__("COMMIT failed: outcome unknown")
        self.ids = ids


def with_retries(fn: Callable[[], T], retry: RetryPolicy, stop: threading.Event) -> T | None:
    """``fn()``, run again after a conflict (40001) or a lost connection, with backoff.

    Returns None if ``stop`` is set while waiting to retry: the failed attempt did not commit.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            conflict = sqlstate(exc) == "40001"
            if not (conflict or isinstance(exc, ConnectionLost)):
                raise
            if attempt >= retry.max_attempts:
                if conflict:
                    raise ConflictRetriesExhausted(
                        f"a batch conflicted {attempt} times", attempt
                    ) from exc
                raise
        if stop.wait(retry.delay(attempt)):
            return None


def _is_lost(exc: BaseException, dbapi_connection: Any) -> bool:
    """Did the connection fail (rather than the SQL)? Closed, a client-side error, SQLSTATE
    class 08 (connection exception) or 57P01-57P03 (server shutting down)."""
    if not isinstance(exc, Exception):
        return False
    if dbapi_connection is None or dbapi_connection.closed:
        return True
    state = sqlstate(exc)
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state.startswith("08") or state in ("57P01", "57P02", "57P03")


class WorkerConnection:
    """One worker's connection, held from batch to batch (a checkout per batch cost ~4%).

    Recycled after ``max_age_s`` (DSQL closes connections at 60 minutes) and discarded
    after any error, never reused in an unknown state; the next ``use()`` connects again,
    which on DSQL mints a fresh IAM token.
    """

    def __init__(self, engine: Engine, max_age_s: float):
        self.engine, self.max_age_s = engine, max_age_s
        self.conn: Any = None
        self.since = 0.0

    @contextmanager
    def use(self) -> Iterator[Any]:
        if self.conn is not None and time.monotonic() - self.since >= self.max_age_s:
            self.discard()
        if self.conn is None:
            try:
                self.conn = self.engine.raw_connection()
            except (DBAPIError, psycopg.OperationalError) as exc:
                raise ConnectionLost(f"cannot connect: {exc}") from exc
            self.since = time.monotonic()
        try:
            yield self.conn
        except BaseException as exc:
            lost = _is_lost(exc, self.conn.dbapi_connection)
            self.discard()
            if lost and not isinstance(exc, _CommitUnknown):
                raise ConnectionLost(f"connection lost: {exc}") from exc
            raise

    def discard(self) -> None:
        if self.conn is not None:
            self.conn.invalidate()  # closes it, frees its pool slot: no close() after this
            self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _insert(connection: WorkerConnection, n: int, balance: Decimal) -> str:
    """One transaction: insert n accounts; returns their ids, one a line."""
    with connection.use() as conn:
        cur = conn.cursor(row_factory=scalar_row)  # plain str values: no row tuples
        cur.execute(INSERT, (balance, n))
        ids = "\n".join(cur.fetchall()) + "\n"
        try:
            conn.commit()
        except Exception as exc:
            if not _is_lost(exc, conn):
                raise  # the server answered (a conflict, a limit): definitely not committed
            raise _CommitUnknown(ids) from exc
        return ids


def _exists(connection: WorkerConnection, account_id: str) -> bool:
    with connection.use() as conn:
        found = conn.cursor().execute(EXISTS, (account_id,)).fetchone()[0]
        conn.commit()
    return bool(found)


def _batch(connection: WorkerConnection, n: int, balance: Decimal, retry: RetryPolicy, stop):
    """Insert one batch, retried; its ids, or None if stopped before it committed."""

    def attempt() -> str:
        try:
            return _insert(connection, n, balance)
        except _CommitUnknown as unknown:
            # All or nothing: the first id tells whether the transaction committed.
            first = unknown.ids.split("\n", 1)[0]
            try:
                committed = with_retries(
                    lambda: _exists(connection, first), retry, threading.Event()
                )
            except Exception as exc:
                raise LoadFailed(
                    f"cannot tell whether a batch of {n} rows (first id {first}) committed: {exc}"
                ) from exc
            if committed:
                return unknown.ids
            raise ConnectionLost(f"COMMIT failed: {unknown.__cause__}") from unknown

    return with_retries(attempt, retry, stop)


class _Load:
    """The shared state of one run: work left, rows committed, the ids file, the first error."""

    def __init__(self, engine, recycle_s, accounts, batch, balance, retry, stop, sink: IO[str]):
        self.engine, self.recycle_s, self.batch, self.balance = engine, recycle_s, batch, balance
        self.retry, self.stop, self.sink = retry, stop, sink
        self.lock = threading.Lock()
        self.unassigned = accounts
        self.rows = 0
        self.error: BaseException | None = None

    def _take(self) -> int:
        with self.lock:
            n = min(self.batch, self.unassigned)
            self.unassigned -= n
            return n

    def _work(self) -> None:
        connection = WorkerConnection(self.engine, self.recycle_s)
        try:
            while not self.stop.is_set() and (n := self._take()):
                ids = _batch(connection, n, self.balance, self.retry, self.stop)
                if ids is None:
                    return  # stopped while waiting to retry: this batch did not commit
                with self.lock:
                    self.sink.write(ids)
                    self.rows += n
        except BaseException as exc:
            with self.lock:
                self.error = self.error or exc
            self.stop.set()
        finally:
            connection.close()

    def run(self, workers: int, report: Callable[[], None], every: float) -> None:
        """Run the workers to the end; joins them before it returns or raises."""
        threads = [
            threading.Thread(target=self._work, name=f"bank-load-{i}") for i in range(workers)
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(every)
                    report()
        except BaseException:
            self.stop.set()
            for thread in threads:
                thread.join()
            raise
        report()
        if self.error is not None:
            raise self.error


def _validate(accounts: int, batch: int, threads: int, balance) -> Decimal:
    if batch > MAX_BATCH:
        raise BatchTooLarge(
            f"batch of {batch} rows: Aurora DSQL modifies at most {MAX_BATCH} rows per transaction"
        )
    for name, value in (("accounts", accounts), ("batch", batch), ("threads", threads)):
        if value < 1:
            raise InvalidRequest(f"{name} must be at least 1, got {value}")
    # numeric(18,6), checked as a transfer's amount is; zero allowed.
    return parse_amount({"balance": str(balance)}, "balance", allow_zero=True)


def load_accounts(
    settings: Settings,
    accounts: int,
    *,
    batch: int = 1000,
    threads: int = 1,
    balance: Decimal | str | int = 100,
    out: Path | str = "uuids.txt",
    stop: threading.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    progress_every: float = 0.2,
) -> LoadResult:
    """Create ``accounts`` UUID accounts in accounts2; write their ids to ``out``.

    Setting ``stop`` (e.g. from a signal handler) stops cleanly: in-flight batches finish
    and are recorded, and ``out`` lists the committed ids. A worker's error stops the others
    and raises LoadFailed, after writing ``out`` if any rows were committed. ``on_progress``
    is called from the calling thread every ``progress_every`` seconds.
    """
    amount = _validate(accounts, batch, threads, balance)
    out = Path(out)
    stop = stop if stop is not None else threading.Event()
    workers = min(threads, math.ceil(accounts / batch))
    started = time.monotonic()
    try:
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise LoadFailed(f"cannot write the ids next to {out}: {exc}") from exc
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would survive os.replace
    engine = make_engine(settings, pool_size=workers, max_overflow=0)
    run: _Load | None = None

    def report() -> None:
        if on_progress is not None and run is not None:
            on_progress(Progress(run.rows, accounts, time.monotonic() - started))

    try:
        with os.fdopen(fd, "w", encoding="ascii") as sink:
            retry = RetryPolicy.from_settings(settings)
            recycle_s = settings.pool_recycle_s
            run = _Load(engine, recycle_s, accounts, batch, amount, retry, stop, sink)
            run.run(workers, report, progress_every)
        os.replace(tmp, out)  # atomic, not fsync'ed: see the module docstring
    except BaseException as exc:
        rows = run.rows if run is not None else 0
        if rows:  # committed rows are listed, whatever stopped the load
            os.replace(tmp, out)
        if isinstance(exc, Exception):
            where = f", their ids are in {out}" if rows else ""
            raise LoadFailed(
                f"{type(exc).__name__}: {exc} ({rows} accounts committed{where})"
            ) from exc
        raise
    finally:
        engine.dispose()
        tmp.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    return LoadResult(accounts, run.rows, seconds, out, interrupted=run.rows < accounts)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressPrinter:
    """Shows Progress on a stream: a bar redrawn in place on a terminal, else a line every
    ``every`` seconds."""

    def __init__(self, stream: IO[str], every: float = 1.0, width: int = 30):
        self.stream, self.every, self.width = stream, every, width
        self.tty = stream.isatty()
        self.last = time.monotonic()
        self.drawn = False

    def __call__(self, p: Progress) -> None:
        fraction = p.rows / p.total if p.total else 1.0
        percent = f"{int(100 * fraction)}%"  # floor: 100% only when done
        stats = f"{p.rows}/{p.total}  {p.rate:,.0f} rows/s  ETA {_clock(p.eta_s)}"
        if self.tty:
            filled = int(self.width * fraction)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r[{bar}] {percent:>4}  {stats}\x1b[K")
            self.drawn = True
        elif time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self.stream.write(f"load: {percent}  {stats}\n")
        else:
            return
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


@contextmanager
def stop_on_signals(
    stop: threading.Event, signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[list[int]]:
    """Within the block, SIGINT and SIGTERM set ``stop`` instead of killing the process.

    Yields the list of the signals received. Main thread only (Python's rule for handlers).
    """
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)
        stop.set()

    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
