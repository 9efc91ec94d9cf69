"""``bank loadtest``: the original's ``invoke-test``.

Random transfers (payer != payee, 0.01 to 10.00) from ``threads`` worker threads, each
one invocation of a ch04/ch05/ch06 function through ``invoke(event)``: the handler
in-process, the way ``bank invoke`` calls it, or the deployed function (``--remote``).
An error is counted by the ``errorType`` Lambda reports.

``iters`` is the TOTAL number of invocations, shared by the threads (as in the original,
which split ``--iters`` over its threads). The requests come from one generator seeded by
``seed``: the same seed gives the same sequence of requests, whichever thread runs each.
A run stops when ``iters`` requests were issued, ``duration_s`` has passed, or ``stop`` is
set (Ctrl-C); a request in flight always finishes, so the report counts every request
issued.

Afterwards it checks what no acknowledged transfer may break: the total balance of the
accounts is the same as before (with no other writer), and every acknowledged transfer is
in the ledger (its ``transfer_id`` is the ledger's key, so it is there at most once).
Those checks read the database: a remote run from a machine that cannot reach it passes
no unit of work, and the report says the checks were skipped, and why.

This module prints nothing and reads no environment: ``bank.kit.cli`` does both.
"""

from __future__ import annotations

import math
import random
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bank.domain.errors import BankError
from bank.domain.model import AccountKind, UuidAccount
from bank.services.unit_of_work import UnitOfWorkFactory

CONFLICTS = ("TransactionConflict", "ConflictRetriesExhausted")
PERCENTILES = (50, 95, 99)


class LoadTestError(BankError):
    """A load test that cannot start: a bad parameter, ids file or account set."""


def read_uuids(path: str | Path, count: int) -> list[str]:
    """The first ``count`` ids of a ``bank load --out`` file (blank lines skipped)."""
    if count < 2:
        raise LoadTestError(f"need at least 2 accounts (payer and payee differ), got {count}")
    ids: list[str] = []
    seen: set[str] = set()
    try:
        with open(path) as fh:
            for number, line in enumerate(fh, 1):
                text = line.strip()
                if not text:
                    continue
                try:
                    value = str(uuid.UUID(text))
                except ValueError:
                    raise LoadTestError(
                        f"{path}, line {number}: not a UUID: {text[:64]!r}"
                    ) from None
                if value in seen:
                    raise LoadTestError(f"{path}, line {number}: duplicate id {value}")
                seen.add(value)
                ids.append(value)
                if len(ids) == count:
                    return ids
    except OSError as exc:
        raise LoadTestError(
            f"cannot read the ids file {path}: {exc.strerror} (`bank load --out {path}` writes one)"
        ) from None
    raise LoadTestError(f"{path} has only {len(ids)} ids, {count} accounts were asked for")


def validate(ids: Sequence, threads: int, iters: int | None, duration_s: float | None) -> None:
    """Refuse parameters a run cannot use, before any database work."""
    if len(ids) < 2:
        raise LoadTestError(f"need at least 2 accounts (payer and payee differ), got {len(ids)}")
    if len(set(ids)) != len(ids):
        raise LoadTestError("the account ids must be distinct")
    if threads < 1:
        raise LoadTestError(f"threads must be at least 1, got {threads}")
    if iters is not None and iters < 1:
        raise LoadTestError(f"iters must be at least 1, got {iters}")
    if duration_s is not None and not duration_s > 0:
        raise LoadTestError(f"duration must be positive, got {duration_s}")


@dataclass(frozen=True)
class Progress:
    seconds: float
    requests: int
    successes: int
    errors: int


@dataclass
class Report:
    function: str
    table: str
    accounts: int
    threads: int
    seed: int
    iters: int | None
    duration_s: float | None
    where: str = "in-process"  # or the deployed function invoked
    stopped_by: str = ""  # "iters", "duration" or "interrupt"
    seconds: float = 0.0
    requests: int = 0  # issued; each ends as a success or an error
    successes: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # by errorType
    attempts: Counter[int] = field(default_factory=Counter)  # of successes (ch05/ch06)
    latencies_ms: list[float] = field(default_factory=list, repr=False)  # every invocation
    balance_before: Decimal = Decimal(0)
    balance_after: Decimal = Decimal(0)
    acknowledged: list[str] = field(default_factory=list, repr=False)  # transfer_ids
    in_ledger: int = 0  # of the acknowledged transfers
    checks_skipped: str | None = None  # why money and ledger were not checked

    @property
    def checked(self) -> bool:
        return self.checks_skipped is None

    @property
    def interrupted(self) -> bool:
        return self.stopped_by == "interrupt"

    @property
    def insufficient_balance(self) -> int:
        return self.errors["InsufficientFunds"]

    @property
    def conflicts(self) -> int:
        return sum(self.errors[name] for name in CONFLICTS)

    @property
    def conserved(self) -> bool | None:
        """None: not checked."""
        return self.balance_before == self.balance_after if self.checked else None

    @property
    def ledger_complete(self) -> bool | None:
        """Every acknowledged transfer is in the ledger (once: its id is the key)."""
        return self.in_ledger == len(self.acknowledged) if self.checked else None

    @property
    def sound(self) -> bool:
        """Nothing wrong was found (a run whose checks were skipped found nothing)."""
        return self.conserved is not False and self.ledger_complete is not False

    @property
    def transfers_per_s(self) -> float:
        return self.successes / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self) -> dict[str, float | None]:
        ordered = sorted(self.latencies_ms)
        result: dict[str, float | None] = {f"p{p}": _percentile(ordered, p) for p in PERCENTILES}
        result["max"] = ordered[-1] if ordered else None
        return result

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function, "where": self.where, "table": self.table,
            "accounts": self.accounts,
            "threads": self.threads, "seed": self.seed, "iters": self.iters,
            "duration_s": self.duration_s, "stopped_by": self.stopped_by,
            "interrupted": self.interrupted, "seconds": round(self.seconds, 3),
            "requests": self.requests, "successes": self.successes,
            "errors": sum(self.errors.values()),
            "errors_by_type": dict(sorted(self.errors.items())),
            "insufficient_balance": self.insufficient_balance, "conflicts": self.conflicts,
            "attempts": {str(k): v for k, v in sorted(self.attempts.items())},
            "transfers_per_s": round(self.transfers_per_s, 1),
            "latency_ms": {k: _round(v) for k, v in self.latency_ms().items()},
            "balance_before": str(self.balance_before) if self.checked else None,
            "balance_after": str(self.balance_after) if self.checked else None,
            "money_conserved": self.conserved,
            "acknowledged_in_ledger": self.in_ledger if self.checked else None,
            "ledger_complete": self.ledger_complete,
            "checks_skipped": self.checks_skipped,
        }


def _percentile(ordered: list[float], p: int) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _total(uow_factory: UnitOfWorkFactory, kind: AccountKind, ids: list) -> tuple[int, Decimal]:
    keys = [uuid.UUID(i) for i in ids] if kind is UuidAccount else ids
    with uow_factory() as uow:
        return uow.accounts(kind).total(keys)


def _in_ledger(uow_factory: UnitOfWorkFactory, transfer_ids: list[str]) -> int:
    with uow_factory() as uow:
        return uow.transfers.count([uuid.UUID(t) for t in transfer_ids])


def run(
    function: str,
    invoke: Callable[[dict], Any],
    uow_factory: UnitOfWorkFactory | None,
    kind: AccountKind,
    ids: Sequence,
    *,
    checks_skipped: str = "no database to check against",
    where: str = "in-process",
    iters: int | None = 1000,
    threads: int = 1,
    duration_s: float | None = None,
    seed: int | None = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 1.0,
) -> Report:
    """Run the load test; ``iters=None`` and ``duration_s=None`` run until ``stop`` is set.

    ``invoke(event)`` returns the function's response, or raises a ``BankError`` (or any
    exception: it is counted by its class name, as Lambda reports it, or by its
    ``error_type`` attribute when it has one: a remote invocation's ``errorType``).
    ``uow_factory=None``: no database to check money and ledger against; the report says
    so, with ``checks_skipped`` as the reason.
    """
    ids = list(ids)
    validate(ids, threads, iters, duration_s)
    stop = stop or threading.Event()
    seed = secrets.randbits(32) if seed is None else seed
    rng = random.Random(seed)
    report = Report(function, kind.__name__, len(ids), threads, seed, iters, duration_s, where)
    if uow_factory is None:
        report.checks_skipped = checks_skipped
        found = len(ids)
    else:
        found, report.balance_before = _total(uow_factory, kind, ids)
    if found != len(ids):
        raise LoadTestError(
            f"{len(ids) - found} of the {len(ids)} accounts do not exist: create them first "
            "(`bank seed`: accounts 1..1000; `bank load`: UUID accounts)"
        )

    lock = threading.Lock()
    start = time.monotonic()
    deadline = None if duration_s is None else start + duration_s

    def next_event() -> dict | None:
        with lock:
            if stop.is_set():
                reason = "interrupt"
            elif iters is not None and report.requests >= iters:
                reason = "iters"
            elif deadline is not None and time.monotonic() >= deadline:
                reason = "duration"
            else:
                report.requests += 1
                payer, payee = rng.sample(ids, 2)
                cents = rng.randint(1, 1000)
                return {"payer_id": payer, "payee_id": payee,
                        "amount": f"{cents // 100}.{cents % 100:02d}"}
            report.stopped_by = report.stopped_by or reason
            return None

    def worker() -> None:
        while (event := next_event()) is not None:
            began = time.perf_counter()
            try:
                response, error = invoke(event), None
            except Exception as exc:  # noqa: BLE001 - counted the way Lambda reports it
                response, error = None, getattr(exc, "error_type", None) or type(exc).__name__
            elapsed_ms = (time.perf_counter() - began) * 1000
            with lock:
                report.latencies_ms.append(elapsed_ms)
                if error is None:
                    report.successes += 1
                    report.acknowledged.append(response["transfer_id"])
                    if "attempts" in response:
                        report.attempts[response["attempts"]] += 1
                else:
                    report.errors[error] += 1

    workers = [threading.Thread(target=worker, name=f"loadtest-{n}") for n in range(threads)]
    for t in workers:
        t.start()
    next_progress = start + progress_every_s
    for t in workers:
        while t.is_alive():
            t.join(timeout=0.1)  # short waits: signal handlers and progress run meanwhile
            if on_progress is not None and time.monotonic() >= next_progress:
                next_progress += progress_every_s
                with lock:
                    snapshot = Progress(time.monotonic() - start, report.requests,
                                        report.successes, sum(report.errors.values()))
                on_progress(snapshot)
    report.seconds = time.monotonic() - start
    if uow_factory is not None:
        _, report.balance_after = _total(uow_factory, kind, ids)
        report.in_ledger = _in_ledger(uow_factory, report.acknowledged)
    return report


def render_progress(p: Progress) -> str:
    rate = p.successes / p.seconds if p.seconds > 0 else 0.0
    return (f"{p.seconds:6.1f} s  {p.requests} requests  {p.successes} ok  "
            f"{p.errors} errors  {rate:.0f} transfers/s")


def render(report: Report) -> str:
    """The report as text, one fact a line."""
    lat = report.latency_ms()
    stopped = {"iters": f"all {report.iters} requests done",
               "duration": f"time limit of {report.duration_s} s reached",
               "interrupt": "INTERRUPTED, partial report"}.get(report.stopped_by, "")
    errors = ", ".join(f"{k} {v}" for k, v in sorted(report.errors.items())) or "none"
    if report.attempts:
        attempts = "  ".join(f"{k}: {v}" for k, v in sorted(report.attempts.items()))
    else:
        attempts = "n/a (no retry in ch04)" if report.function == "Ch04Function" else "none"
    if not report.checked:
        money = f"NOT CHECKED: {report.checks_skipped}"
    elif report.conserved:
        money = f"conserved ({report.balance_before} before and after)"
    else:
        money = (f"NOT CONSERVED: {report.balance_before} before, {report.balance_after} after "
                 f"(difference {report.balance_after - report.balance_before})")

    def ms(key: str) -> str:
        return "-" if lat[key] is None else f"{lat[key]:.1f}"

    if not report.checked:
        ledger = f"NOT CHECKED ({len(report.acknowledged)} transfers acknowledged)"
    elif report.ledger_complete:
        ledger = f"all {len(report.acknowledged)} acknowledged transfers recorded, once each"
    else:
        ledger = (f"INCOMPLETE: {report.in_ledger} of {len(report.acknowledged)} acknowledged "
                  "transfers recorded")
    lines = [
        f"{report.function} ({report.where}) on {report.table}: {report.accounts} accounts, "
        f"{report.threads} threads, seed {report.seed}; {stopped} in {report.seconds:.2f} s",
        f"  requests              {report.requests}",
        f"  successes             {report.successes}",
        f"  errors                {sum(report.errors.values())}  ({errors})",
        f"  insufficient balance  {report.insufficient_balance}  (of the errors: payer lacked it)",
        f"  conflicts             {report.conflicts}  (of the errors: {' + '.join(CONFLICTS)})",
        f"  attempts              {attempts}",
        f"  transfers/s           {report.transfers_per_s:.1f}",
        f"  latency ms            p50 {ms('p50')}  p95 {ms('p95')}  p99 {ms('p99')}"
        f"  max {ms('max')}",
        f"  money                 {money}",
        f"  ledger                {ledger}",
    ]
    return "\n".join(lines)
