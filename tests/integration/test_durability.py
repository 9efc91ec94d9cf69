"""No acknowledged transfer is lost to a crash of the embedded server.

A throwaway embedded server; a writer commits transfers through the application's real
path (the ch05 handler), recording every acknowledged ``transfer_id``; the postmaster
and all its children are SIGKILLed mid-stream; the server is started again at once.
Every acknowledged transfer must be in the ledger, and the balances must be what the
ledger says, with the money conserved.

With ``synchronous_commit = off`` (what the embedded server ran with before), this test
loses hundreds of acknowledged transfers.
"""

import random
import sys
import threading
import time
import uuid
from decimal import Decimal

import psycopg
import pytest

from tests.conftest import Schema, in_schema
from tests.crash import crash

ACCOUNTS = 20
BALANCE = Decimal(1000)
KILL_AFTER = 300  # acknowledged transfers before the crash


@pytest.fixture()
def app_on(monkeypatch):
    """Point the application (settings, process-wide engine) at a URL and schema; put it
    back afterwards."""
    from bank.adapters import database, settings

    def point(url: str, schema: str) -> None:
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("BANK_SCHEMA", schema)
        monkeypatch.setenv("BANK_OCC_MAX_ATTEMPTS", "2")  # a dead server: fail soon
        monkeypatch.delenv("CLUSTER_ENDPOINT", raising=False)
        settings.get_settings.cache_clear()
        database.install_engine(None)

    yield point
    database.install_engine(None)
    settings.get_settings.cache_clear()


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="finds the server's children in /proc")
def test_no_acknowledged_transfer_is_lost_to_a_crash(throwaway_server, app_on):
    server = throwaway_server()
    url = server.start().url
    schema = Schema(url, prefix="durability").create()
    schema.admin.dispose()
    plain = in_schema(url, schema.name).replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts SELECT g, %s FROM generate_series(1, %s) g",
                     (BALANCE, ACCOUNTS))
    app_on(url, schema.name)
    from bank.handlers.ch05 import handler

    acknowledged: list[str] = []
    failure: list[BaseException] = []

    def writer() -> None:
        rng = random.Random(5)
        while True:
            payer, payee = rng.sample(range(1, ACCOUNTS + 1), 2)
            event = {"payer_id": payer, "payee_id": payee,
                     "amount": f"{rng.randint(1, 500) / 100:.2f}",
                     "transfer_id": str(uuid.uuid4())}
            try:
                response = handler(event)
            except Exception as exc:  # the server is gone: this one was not acknowledged
                failure.append(exc)
                return
            assert response["transfer_id"] == event["transfer_id"]
            acknowledged.append(response["transfer_id"])

    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < KILL_AFTER and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(acknowledged) >= KILL_AFTER, failure
    crash(server.pid())
    thread.join(60)
    assert not thread.is_alive() and failure, "the writer did not notice the crash"

    restarted = server.start()  # right after the crash
    assert restarted.running
    with psycopg.connect(plain) as conn:
        ledger = {str(r[0]) for r in conn.execute("SELECT id FROM transfers")}
        balances = dict(conn.execute("SELECT id, balance FROM accounts").fetchall())
        moved = conn.execute("SELECT payer_id, payee_id, amount FROM transfers").fetchall()
    lost = [t for t in acknowledged if t not in ledger]
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged transfers lost"
    assert sum(balances.values()) == ACCOUNTS * BALANCE  # money conserved
    expected = {n: BALANCE for n in range(1, ACCOUNTS + 1)}
    for payer, payee, amount in moved:
        expected[int(payer)] -= amount
        expected[int(payee)] += amount
    assert balances == expected  # the balances are what the ledger says
