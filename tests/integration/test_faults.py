"""Faults on a real server: a lost COMMIT reply, killed backends, held locks, a silent server.

A proxy between the application and the server (``benchmarks/netproxy.py``) lets COMMIT
through and drops its reply; backends are killed with ``pg_terminate_backend``; a row lock
is held by another connection; a socket that accepts and never answers stands in for a
server that hangs. Each time the caller sees a named outcome, and the money moves once.

Local PostgreSQL only, where it needs a superuser (``pg_terminate_backend`` on another
role's backend) or a proxy in front of the server: Aurora DSQL has neither.
"""

from __future__ import annotations

import functools
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bank.adapters import database, errors, settings
from bank.kit import local
from benchmarks.netproxy import Proxy
from tests.conftest import balances


class Context:
    """A Lambda context with ``seconds`` left."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@pytest.fixture
def through(server_url, test_schema, database_url):
    """Point the application at ``host:port`` (a proxy, a silent socket) for one test."""
    saved = os.environ["DATABASE_URL"]

    def use(port: int, host: str = "127.0.0.1") -> None:
        url = make_url(server_url).set(host=host, port=port)
        os.environ["DATABASE_URL"] = url.render_as_string(hide_password=False)
        settings.get_settings.cache_clear()
        database.install_engine(None)

    yield use
    os.environ["DATABASE_URL"] = saved
    settings.get_settings.cache_clear()
    database.install_engine(None)


@pytest.fixture
def proxy(server_url, through):
    url = make_url(server_url)
    p = Proxy(url.host or "127.0.0.1", url.port or 5432).start()
    through(p.listen_port)
    yield p
    p.stop()


def ledger(engine, transfer_id) -> list:
    with engine.connect() as conn:
        return conn.execute(text("SELECT payer_balance FROM transfers WHERE id = :id"),
                            {"id": transfer_id}).scalars().all()


@pytest.mark.parametrize("chapter", ["ch04", "ch05"])
def test_a_lost_commit_reply_is_settled_and_the_money_moves_once(engine, make_accounts, proxy,
                                                                  chapter):
    from bank.handlers import ch04, ch05

    handler = {"ch04": ch04, "ch05": ch05}[chapter].handler
    payer, payee = make_accounts(2, balance=100)
    event = {"payer_id": payer, "payee_id": payee, "amount": "7",
             "transfer_id": str(uuid.uuid4())}
    handler({"payer_id": payer, "payee_id": payee, "amount": "1"})  # connected, warm
    proxy.drop_after_commit = True
    response = handler(event, Context(30))
    assert proxy.stats.commits_dropped == 1, "COMMIT's reply was not dropped: proved nothing"
    # The COMMIT went through, its reply did not: the ledger settled it, as a success.
    assert response["payer_balance"] == "92.000000" and "replayed" not in response
    assert balances(engine, [payer, payee]) == {payer: Decimal(92), payee: Decimal(108)}
    assert ledger(engine, event["transfer_id"]) == [Decimal(92)]
    # The caller, unsure, sends it again: the first outcome, no second transfer.
    again = handler(event, Context(30))
    assert (again["payer_balance"], again["replayed"]) == ("92.000000", True)
    assert balances(engine, [payer, payee]) == {payer: Decimal(92), payee: Decimal(108)}


def test_a_replay_whose_commit_reply_is_lost_is_still_answered_as_a_replay(
        engine, make_accounts, proxy):
    """The same transfer_id sent again, and COMMIT's reply to that attempt lost: the ledger
    holds the first request's entry, so the answer is the first outcome, as a replay."""
    from bank.handlers import ch05

    payer, payee = make_accounts(2, balance=100)
    event = {"payer_id": payer, "payee_id": payee, "amount": "3", "transfer_id": str(uuid.uuid4())}
    first = ch05.handler(event, Context(30))
    proxy.drop_after_commit = True
    again = ch05.handler(event, Context(30))
    assert proxy.stats.commits_dropped == 1, "COMMIT's reply was not dropped: proved nothing"
    assert (again["payer_balance"], again.get("replayed")) == (first["payer_balance"], True)
    assert balances(engine, [payer, payee]) == {payer: Decimal(97), payee: Decimal(103)}
    assert ledger(engine, event["transfer_id"]) == [Decimal(97)]


def test_killed_backends_give_named_errors_and_lose_no_transfer(engine, make_accounts):
    """Backends killed every few milliseconds under 4 writers: callers see named errors
    only, money is conserved, and every acknowledged transfer is in the ledger once."""
    from bank.handlers import ch05

    ids = make_accounts(20, balance=100)
    stop = threading.Event()
    acknowledged: list[str] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def writer(n: int) -> None:
        rng = random.Random(n)
        while not stop.is_set():
            payer, payee = rng.sample(ids, 2)
            event = {"payer_id": payer, "payee_id": payee, "amount": f"{rng.randint(1, 500) / 100}"}
            try:
                response = ch05.handler(event, Context(30))
            except errors.BankError as exc:
                with lock:
                    outcomes[type(exc).__name__] += 1
            except Exception as exc:  # noqa: BLE001 - a raw error is the failure looked for
                with lock:
                    outcomes[f"RAW {type(exc).__module__}.{type(exc).__name__}"] += 1
            else:
                with lock:
                    acknowledged.append(response["transfer_id"])
                    outcomes["ok"] += 1

    killed = 0
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for w in writers:
        w.start()
    try:
        # Each statement a transaction of its own: pg_stat_activity is read afresh each time.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                time.sleep(0.02)
                killed += sum(admin.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND application_name = 'bank'"
                )).scalars())
    except errors.DatabaseUnavailable:
        pass  # the killer's own connection went too
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert killed > 10, f"only {killed} backends killed: the test proved little"
    assert not [name for name in outcomes if name.startswith("RAW")], outcomes
    assert outcomes["ok"] > 0
    after = balances(engine, ids)
    assert sum(after.values()) == Decimal(2000) and min(after.values()) >= 0
    with engine.connect() as conn:
        recorded = conn.execute(text("SELECT count(*) FROM transfers WHERE id = ANY(:ids)"),
                                {"ids": [uuid.UUID(t) for t in acknowledged]}).scalar()
    assert recorded == len(acknowledged) == len(set(acknowledged))


def test_a_lock_held_elsewhere_never_outlasts_the_lambdas_time(engine, make_accounts):
    from bank.handlers import ch05

    payer, payee = make_accounts(2, balance=100)
    with engine.connect() as holder:
        holder.execute(text("BEGIN"))
        holder.execute(text("UPDATE accounts SET balance = balance WHERE id = :id"),
                       {"id": payer})
        start = time.monotonic()
        with pytest.raises(errors.BankError) as info:
            ch05.handler({"payer_id": payer, "payee_id": payee, "amount": "1"}, Context(3))
        elapsed = time.monotonic() - start
        holder.execute(text("ROLLBACK"))
    assert elapsed < 3, f"waited {elapsed:.1f} s with 3 s left"
    assert type(info.value).__name__ in {"ConflictRetriesExhausted", "DatabaseTimeout"}
    assert info.value.applied is False
    assert balances(engine, [payer]) == {payer: Decimal(100)}


def test_a_server_that_never_answers_never_outlasts_the_lambdas_time(through):
    from bank.handlers import ch05

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept)
    thread.start()
    through(silent.getsockname()[1])
    try:
        start = time.monotonic()
        with pytest.raises(errors.BankError) as info:
            ch05.handler({"payer_id": 1, "payee_id": 2, "amount": "1"}, Context(4))
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        thread.join()
        for s in accepted:
            s.close()
        silent.close()
    assert accepted, "nothing connected: the test proved nothing"
    assert elapsed < 4, f"blocked {elapsed:.1f} s with 4 s left"
    assert type(info.value).__name__ in {"DatabaseUnavailable", "DatabaseTimeout"}


def test_a_server_that_takes_the_cancel_and_stays_silent_never_outlasts_the_lambdas_time(
        engine, make_accounts, proxy):
    """The statement is in flight when the server goes silent: the deadline's cancel gets no
    answer either, and the socket is cut. All of it within the Lambda's remaining time."""
    from bank.handlers import ch05

    payer, payee = make_accounts(2, balance=100)
    ch05.handler({"payer_id": payer, "payee_id": payee, "amount": "1"})  # connected, warm
    proxy.silent = True
    remaining = 2.5
    start = time.monotonic()
    with pytest.raises(errors.BankError) as info:
        ch05.handler({"payer_id": payer, "payee_id": payee, "amount": "1"}, Context(remaining))
    elapsed = time.monotonic() - start
    proxy.silent = False
    assert elapsed < remaining, f"answered after {elapsed:.2f} s with {remaining} s left"
    assert type(info.value).__name__ in {"DatabaseUnavailable", "DatabaseTimeout"}
    assert balances(engine, [payer]) == {payer: Decimal(99)}  # the silent one never applied


def test_a_transfer_takes_two_round_trips(make_accounts, proxy):
    """BEGIN travels with the move, the ledger entry with COMMIT (the original took four)."""
    from bank.handlers import ch03, ch05

    payer, payee = make_accounts(2, balance=100)
    ch05.handler({"payer_id": payer, "payee_id": payee, "amount": "1"})  # connected, warm
    for _ in range(3):
        before = proxy.stats.snapshot()[0]
        ch05.handler({"payer_id": payer, "payee_id": payee, "amount": "1"})
        assert proxy.stats.snapshot()[0] - before == 2
    before = proxy.stats.snapshot()[0]
    ch03.handler({"id": payer})
    assert proxy.stats.snapshot()[0] - before <= 2


def test_the_round_trips_of_a_read_and_of_a_refused_transfer(make_accounts, proxy):
    """A read is BEGIN with its SELECT, then ROLLBACK. A refused transfer is BEGIN with the
    move, the ledger lookup (a replay?), both accounts in one read, then ROLLBACK; psycopg's
    rollback() also forgets the prepared statements (DEALLOCATE ALL, one more round trip)
    when there are some, as there are after a few transfers (it prepares a statement on its
    fifth run), in case the transaction changed the schema."""
    from bank.domain.errors import InsufficientFunds
    from bank.handlers import ch03, ch05

    payer, payee = make_accounts(2, balance=100)
    reads = []
    for _ in range(12):  # past psycopg's prepare threshold (5), twice
        before = proxy.stats.snapshot()[0]
        ch03.handler({"id": payer})
        reads.append(proxy.stats.snapshot()[0] - before)
    # Every rollback starts psycopg's count of runs again: a read alone is never prepared.
    assert reads[1:] == [2] * 11, reads
    refused = []
    for _ in range(6):
        for _ in range(6):  # the move and the ledger insert are prepared by now
            ch05.handler({"payer_id": payer, "payee_id": payee, "amount": "0.01"})
        before = proxy.stats.snapshot()[0]
        with pytest.raises(InsufficientFunds):
            ch05.handler({"payer_id": payer, "payee_id": payee, "amount": "1000"})
        refused.append(proxy.stats.snapshot()[0] - before)
    assert refused == [5] * 6, refused


def test_after_a_lost_connection_the_unit_of_work_never_reconnects_midway(
        server_url, engine, make_accounts):
    """The backend dies in the middle of a unit of work: its next statement is a named error,
    nothing runs on a new connection outside the transaction it began (SQLAlchemy refuses
    every later statement of that transaction), nothing is kept, and the connection still
    goes back to the pool."""
    from sqlalchemy.exc import PendingRollbackError

    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.domain.model import Account

    payer, payee = make_accounts(2, balance=100)
    pool = database.get_engine().pool
    before = pool.checkedout()
    with SqlAlchemyUnitOfWork() as uow:
        accounts = uow.accounts(Account)
        assert accounts.get(payer).balance == Decimal(100)  # the session, in the transaction
        pid = uow.session.execute(text("SELECT pg_backend_pid()")).scalar()
        with local.setup_engine(server_url).connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        time.sleep(0.2)
        with pytest.raises(errors.DatabaseUnavailable):
            accounts.move(payer, payee, Decimal(1))
        with pytest.raises(PendingRollbackError):
            accounts.get(payee)
        with pytest.raises(PendingRollbackError):
            uow.commit()
    assert pool.checkedout() == before
    assert balances(engine, [payer, payee]) == {payer: Decimal(100), payee: Decimal(100)}


def test_a_pool_of_dead_connections_costs_one_attempt_not_one_each(server_url, test_schema,
                                                                     make_accounts):
    """A restarted server leaves every pooled connection dead. The first transfer to find
    one retries once; the others are replaced at checkout, not found dead one by one."""
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.domain.model import Account
    from bank.domain.requests import parse_transfer
    from bank.kit.local import application_engine
    from bank.services.retry import RetryPolicy
    from bank.services.transfers import transfer
    from tests.conftest import settings_for

    payer, payee = make_accounts(2, balance=100)
    app = application_engine(settings_for(server_url, test_schema.name), pool_size=4,
                             max_overflow=0)
    try:
        held = [app.connect() for _ in range(4)]
        pids = [c.exec_driver_sql("SELECT pg_backend_pid()").scalar() for c in held]
        for c in held:
            c.close()  # back in the pool, alive as far as the pool knows
        with local.setup_engine(server_url).connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(pid) FROM unnest(:pids) AS pid"),
                          {"pids": pids})
        time.sleep(0.2)  # the backends are gone
        uow = functools.partial(SqlAlchemyUnitOfWork, engine=app)
        request = parse_transfer({"payer_id": payer, "payee_id": payee, "amount": "1"})
        result = transfer(uow, Account, request, policy=RetryPolicy(base_delay_s=0))
        assert result.attempts == 2  # one dead connection found; not four
        assert result.payer_balance == Decimal(99)
    finally:
        app.dispose()


def test_no_parameter_value_reaches_any_log_when_the_connection_dies_after_an_error(
        engine, make_accounts, proxy, caplog):
    """A replay's ledger INSERT fails in the commit pipeline (its key, the transfer_id, is in
    the server's DETAIL), and the connection dies right after the reply: the replay is
    answered, and no log record, traceback included, carries the transfer_id."""
    import logging
    import traceback

    from bank.handlers import ch05

    payer, payee = make_accounts(2, balance=100)
    event = {"payer_id": payer, "payee_id": payee, "amount": "1", "transfer_id": str(uuid.uuid4())}
    ch05.handler(event)
    caplog.set_level(logging.DEBUG)
    proxy.close_after_commit_reply = True
    again = ch05.handler(event, Context(30))
    assert again["replayed"] is True and again["payer_balance"] == "99.000000"
    ch05.handler({"payer_id": payer, "payee_id": payee, "amount": "1"})  # the pool recovers
    logged = []
    for record in caplog.records:
        logged.append(record.getMessage())
        if record.exc_info:
            logged.append("".join(traceback.format_exception(*record.exc_info)))
    leaks = [text for text in logged if event["transfer_id"] in text]
    assert not leaks, leaks[0]
