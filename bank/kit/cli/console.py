"""What the commands share at the terminal: progress, Ctrl-C, and files written whole."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tqdm import tqdm

from bank.kit.errors import LoadFailed
from bank.kit.loader import Progress


class LoadProgress:
    """``bank load``'s progress: tqdm's bar on a terminal, else a plain line every ``every`` s."""

    def __init__(self, stream: IO[str], total: int, every: float = 1.0):
        self.stream, self.every, self.total = stream, every, total
        self.bar = tqdm(total=total, unit="rows", unit_scale=True, file=stream, leave=True,
                        dynamic_ncols=True) if stream.isatty() else None
        self.last = time.monotonic()

    def __call__(self, p: Progress) -> None:
        if self.bar is not None:
            self.bar.update(p.rows - self.bar.n)
        elif time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            percent = int(100 * p.rows / p.total) if p.total else 100
            self.stream.write(f"load: {percent}%  {p.rows}/{p.total}  {p.rate:,.0f} rows/s\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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


class IdsFile:
    """Ids, one a line, written to a temporary file next to ``path`` that replaces ``path``
    in one ``os.replace`` at the end: the file appears once, complete, listing exactly the
    ids handed to ``write``, also after a stop or an error. Not fsync'ed: a machine crash
    may lose it (a local load is re-run, not recovered)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                        suffix=".tmp")
        except OSError as exc:
            raise LoadFailed(f"cannot write the ids next to {self.path}: {exc}") from exc
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would survive os.replace
        self.tmp = Path(name)
        self.sink = os.fdopen(fd, "w", encoding="ascii")
        self.count = 0

    def write(self, ids: list[str]) -> None:
        self.sink.write("\n".join(ids) + "\n")
        self.count += len(ids)

    def close(self) -> None:
        """Publish what was written (if anything); remove the temporary file."""
        self.sink.close()
        if self.count:
            os.replace(self.tmp, self.path)
        self.tmp.unlink(missing_ok=True)
