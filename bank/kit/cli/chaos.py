"""``bank chaos``: transfers under faults, on a throwaway embedded PostgreSQL, then an audit.

Workers run ch04, ch05 and ch06 transfers through the real handlers (as ``bank invoke``
does) while the server's client backends are killed every ``kill_every_s`` and, once,
half-way, the postmaster itself is killed (SIGKILL: a crash) and started again. Then it
checks what no fault may break:

- money is conserved and no balance is negative, in both account tables;
- every acknowledged transfer is in the ledger exactly once, and the balances are the
  ledger's sum: no acknowledged transfer lost, none applied twice, none applied unrecorded;
- callers saw only named errors (the classes of ``bank.domain.errors``), never a raw one.

Local only: it owns a server of its own (``data_dir``), which it starts and crashes.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bank.adapters import database, migrations, settings
from bank.domain.errors import BankError
from bank.kit import local
from bank.kit.embedded import EmbeddedPostgres, delete_os_user
from bank.kit.errors import EmbeddedDatabaseError
from bank.kit.local import setup_engine

ACCOUNTS = 20
BALANCE = Decimal(100)


@dataclass
class ChaosReport:
    seconds: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)  # by function
    outcomes: Counter[str] = field(default_factory=Counter)  # "ok" or the errorType
    raw_errors: list[str] = field(default_factory=list)
    backends_killed: int = 0
    crashes: int = 0
    restart_s: float | None = None  # from the crash to the server answering again
    recovery_s: float | None = None  # from the crash to the first transfer, begun after it,
    #                                  acknowledged
    totals: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # before, after
    negative: int = 0
    acknowledged: int = 0
    in_ledger_once: int = 0
    unexplained: dict[str, Decimal] = field(default_factory=dict)  # balance - ledger's sum

    @property
    def sound(self) -> bool:
        return (not self.raw_errors and self.negative == 0
                and all(b == a for b, a in self.totals.values())
                and self.in_ledger_once == self.acknowledged and not self.unexplained)

    def render(self) -> str:
        calls = ", ".join(f"{k} {v}" for k, v in sorted(self.calls.items()))
        outcomes = ", ".join(f"{k} {v}" for k, v in self.outcomes.most_common())
        money = "; ".join(f"{t}: {b} -> {a}" for t, (b, a) in self.totals.items())
        recovery = "-" if self.recovery_s is None else (
            f"{self.recovery_s:.2f} s from the crash to the first transfer begun after it and "
            f"acknowledged (the restart took {self.restart_s:.2f} s)")
        return "\n".join([
            f"chaos: {sum(self.calls.values())} calls in {self.seconds:.1f} s ({calls})",
            f"  outcomes             {outcomes}",
            f"  faults               {self.backends_killed} backends killed, "
            f"{self.crashes} server crash(es)",
            f"  recovery             {recovery}",
            f"  raw errors           {len(self.raw_errors)} {self.raw_errors[:3]}",
            f"  money                {money}; {self.negative} negative balances",
            f"  ledger               {self.in_ledger_once} of {self.acknowledged} acknowledged "
            "transfers recorded, once each",
            f"  balances vs ledger   {len(self.unexplained)} accounts differ "
            f"{dict(list(self.unexplained.items())[:3])}",
            f"  verdict              {'SOUND' if self.sound else 'BROKEN'}",
        ])


_ENV = ("DATABASE_URL", "BANK_SCHEMA", "BANK_POOL_SIZE", "BANK_POOL_MAX_OVERFLOW")


def _point_at(url: str | None, pool: int, saved: dict[str, str | None] | None = None) -> None:
    """The application's engine on ``url`` (or, with ``saved``, back where it was)."""
    values = saved if saved is not None else {
        "DATABASE_URL": url, "BANK_SCHEMA": None, "BANK_POOL_SIZE": str(pool),
        "BANK_POOL_MAX_OVERFLOW": "0"}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    settings.get_settings.cache_clear()
    local.use()  # the kit's engine for that server (strict mode as the kit runs it)


def run(data_dir: Path, *, duration_s: float = 20.0, workers: int = 6, kill_every_s: float = 2.0,
        crash: bool = True, seed: int = 0, throwaway: bool = False) -> ChaosReport:
    """Start a server in ``data_dir``, run the workers under faults, audit; stop the server.

    ``throwaway``: ``data_dir`` is deleted afterwards, so (as root) is the server's OS user.
    """
    server = EmbeddedPostgres(data_dir)
    url = server.start().url
    assert url is not None
    saved = {key: os.environ.get(key) for key in _ENV}
    _point_at(url, workers)
    try:
        return _run(server, url, duration_s, workers, kill_every_s, crash, seed)
    finally:
        _point_at(None, 0, saved)
        server.stop()
        if throwaway and server.os_user is not None:
            delete_os_user(server.os_user)


def _run(server: EmbeddedPostgres, url: str, duration_s: float, workers: int,
         kill_every_s: float, crash: bool, seed: int) -> ChaosReport:
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.domain.model import Account, UuidAccount
    from bank.kit.cli.invoke import LocalContext, resolve

    migrations.upgrade(database.get_engine())
    int_ids = list(range(1, ACCOUNTS + 1))
    uuid_ids = [uuid.uuid4() for _ in range(ACCOUNTS)]
    with SqlAlchemyUnitOfWork() as uow:
        uow.accounts(Account).put_many(int_ids, BALANCE)
        uow.accounts(UuidAccount).put_many(uuid_ids, BALANCE)
        uow.commit()

    functions = {name: resolve(name) for name in ("ch04", "ch05", "ch06")}
    handlers = {name: fn.load_handler() for name, fn in functions.items()}
    report = ChaosReport()
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    crashed_at: list[float] = []

    def worker(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        while not stop.is_set():
            name = rng.choice(("ch04", "ch05", "ch06"))
            ids: list[Any] = [str(u) for u in uuid_ids] if name == "ch06" else int_ids
            payer, payee = rng.sample(ids, 2)
            event = {"payer_id": payer, "payee_id": payee,
                     "amount": f"{rng.randint(1, 1000) / 100:.2f}"}
            began = time.monotonic()
            try:
                response = handlers[name](event, LocalContext(functions[name]))
            except BankError as exc:
                outcome, raw = type(exc).__name__, None
            except Exception as exc:  # noqa: BLE001 - a raw error is what this looks for
                outcome, raw = "RAW", f"{type(exc).__module__}.{type(exc).__name__}"
            else:
                outcome, raw = "ok", None
            with lock:
                report.calls[name] += 1
                report.outcomes[outcome] += 1
                if raw:
                    report.raw_errors.append(raw)
                if outcome == "ok":
                    acknowledged.append(response["transfer_id"])
                    if crashed_at and began > crashed_at[0] and report.recovery_s is None:
                        report.recovery_s = time.monotonic() - crashed_at[0]
            if outcome != "ok":
                time.sleep(0.01)  # a failed call: do not spin while the server is down

    admin = setup_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)

    def kill_backends() -> None:
        try:
            with admin.connect() as conn:
                report.backends_killed += sum(conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )).scalars())
        except Exception:  # noqa: BLE001 - the server may be down: that is the point
            pass

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        next_kill = started + kill_every_s
        crash_at = started + duration_s / 2 if crash else None
        while (now := time.monotonic()) < started + duration_s:
            if crash_at is not None and now >= crash_at:
                crash_at = None
                pid = server.pid()
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    _wait_dead(pid)
                    crashed_at.append(time.monotonic())
                    report.crashes += 1
                    _restart(server)
                    report.restart_s = time.monotonic() - crashed_at[0]
            elif now >= next_kill:
                next_kill = now + kill_every_s
                kill_backends()
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    report.seconds = time.monotonic() - started
    _audit(admin, report, acknowledged, int_ids, uuid_ids)
    admin.dispose()
    return report


def _wait_dead(pid: int, timeout_s: float = 10.0) -> None:
    """Until the killed process is gone or a zombie: a signal is delivered asynchronously,
    and until then the server still looks alive (and a start would find it running)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)


def _restart(server: EmbeddedPostgres, timeout_s: float = 60.0) -> None:
    """Start the server again once its old backends have noticed the crash and gone."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            server.start()
            return
        except EmbeddedDatabaseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _audit(admin, report: ChaosReport, acknowledged: list[str], int_ids, uuid_ids) -> None:
    report.acknowledged = len(acknowledged)
    with admin.connect() as conn:
        for table, ids in (("accounts", [str(i) for i in int_ids]),
                           ("accounts2", [str(u) for u in uuid_ids])):
            rows = dict(conn.execute(text(
                f"SELECT id::text, balance FROM {table} WHERE id::text = ANY(:ids)"  # noqa: S608
            ), {"ids": ids}).all())
            report.totals[table] = (BALANCE * len(ids), sum(rows.values(), Decimal(0)))
            report.negative += sum(1 for b in rows.values() if b < 0)
            moved: dict[str, Decimal] = defaultdict(Decimal)
            for payer, payee, amount in conn.execute(text(
                "SELECT payer_id, payee_id, amount FROM transfers WHERE payer_id = ANY(:ids)"
            ), {"ids": ids}).all():
                moved[payer] -= amount
                moved[payee] += amount
            for account, balance in rows.items():
                if balance != BALANCE + moved[account]:
                    report.unexplained[account] = balance - (BALANCE + moved[account])
        report.in_ledger_once = conn.execute(text(
            "SELECT count(*) FROM transfers WHERE id = ANY(:ids)"
        ), {"ids": [uuid.UUID(t) for t in acknowledged]}).scalar_one()
    if len(set(acknowledged)) != len(acknowledged):
        report.in_ledger_once = -1  # one transfer_id acknowledged twice as new
