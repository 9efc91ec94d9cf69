"""``bank.adapters.pipelining`` at its boundary: ordinary transactions, fewer round trips.

Every test runs on an engine made as the application makes its own (strict mode and all),
through a proxy that counts round trips (``benchmarks/netproxy.py``), against the test
schema's ``accounts`` table. What is checked: transactions stay atomic whatever opens them
(``engine.begin()``, ``Session.begin()``, ``connect()`` then ``commit()``), BEGIN travels
with the first statement and COMMIT with the queued INSERTs, errors of queued INSERTs
are raised and named, and a connection is clean for the next transaction after any of it.
"""

from __future__ import annotations

import itertools
import secrets
from decimal import Decimal

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bank.adapters import orm
from bank.adapters.errors import DatabaseError
from bank.domain.model import Account
from benchmarks.netproxy import Proxy
from tests.conftest import engine_for

accounts = orm.accounts
_ids = itertools.count(1_900_000_000 + secrets.randbelow(10_000) * 1000)


@pytest.fixture
def proxy(server_url):
    url = make_url(server_url)
    p = Proxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield p
    p.stop()


@pytest.fixture
def app(test_schema, proxy):
    """An application engine on the test schema, through the counting proxy."""
    url = make_url(test_schema.url).set(host="127.0.0.1", port=proxy.listen_port)
    engine = engine_for(url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    with engine.connect() as conn:  # connected and warm: the counts below are the work's own
        conn.execute(text("SELECT 1"))
    yield engine
    engine.dispose()


def trips(proxy: Proxy, work) -> int:
    before = proxy.stats.snapshot()[0]
    work()
    return proxy.stats.snapshot()[0] - before


def rows(engine, ids) -> dict:
    with engine.connect() as conn:
        found = conn.execute(select(accounts.c.id, accounts.c.balance)
                             .where(accounts.c.id.in_(list(ids))))
        return dict(found.all())


def new_ids(n: int) -> list[int]:
    return [next(_ids) for _ in range(n)]


def test_engine_begin_is_atomic(app):
    a, b = new_ids(2)
    with pytest.raises(RuntimeError), app.begin() as conn:
        conn.execute(insert(accounts), {"id": a, "balance": 1})
        conn.execute(update(accounts).where(accounts.c.id == a).values(balance=2))
        conn.execute(insert(accounts), {"id": b, "balance": 1})
        raise RuntimeError("boom")
    assert rows(app, [a, b]) == {}
    with app.begin() as conn:
        conn.execute(insert(accounts), [{"id": a, "balance": 1}, {"id": b, "balance": 2}])
    assert rows(app, [a, b]) == {a: Decimal(1), b: Decimal(2)}


def test_session_begin_is_atomic(app):
    a, b = new_ids(2)
    with pytest.raises(RuntimeError), Session(app) as session, session.begin():
        session.add(Account(a, Decimal(1)))
        session.flush()
        assert session.get(Account, a).balance == Decimal(1)  # inside: visible
        session.add(Account(b, Decimal(1)))
        raise RuntimeError("boom")
    assert rows(app, [a, b]) == {}
    with Session(app) as session, session.begin():
        session.add_all([Account(a, Decimal(1)), Account(b, Decimal(2))])
    assert rows(app, [a, b]) == {a: Decimal(1), b: Decimal(2)}


def test_a_connection_keeps_nothing_without_commit(app):
    (a,) = new_ids(1)
    with app.connect() as conn:
        conn.execute(insert(accounts), {"id": a, "balance": 1})
        assert conn.execute(select(accounts.c.balance).where(accounts.c.id == a)).scalar() == 1
    assert rows(app, [a]) == {}
    with app.connect() as conn:
        conn.execute(insert(accounts), {"id": a, "balance": 1})
        conn.commit()
        conn.execute(update(accounts).where(accounts.c.id == a).values(balance=5))
        # a second transaction, begun by that statement, never committed
    assert rows(app, [a]) == {a: Decimal(1)}


def test_begin_travels_with_the_first_statement_and_commit_with_the_inserts(app, proxy):
    a, b, c = new_ids(3)

    def transfer_shaped():  # what a transfer does: a read-write statement, then an INSERT
        with Session(app) as session, session.begin():
            session.execute(insert(accounts), {"id": a, "balance": 10})
            moved = session.execute(update(accounts).where(accounts.c.id == a)
                                    .values(balance=accounts.c.balance - 1)
                                    .returning(accounts.c.balance)).scalar_one()
            assert moved == Decimal(9)
            session.add(Account(b, moved))

    def inserts_only():
        with app.begin() as conn:
            conn.execute(insert(accounts), {"id": c, "balance": 1})
            conn.execute(update(accounts).where(accounts.c.id == c).values(balance=3))

    # BEGIN + INSERT + UPDATE ... RETURNING; then the ORM's INSERT + COMMIT.
    assert trips(proxy, transfer_shaped) == 2
    # BEGIN + INSERT + UPDATE (its row count is waited for); then COMMIT.
    assert trips(proxy, inserts_only) == 2
    assert rows(app, [a, b, c]) == {a: Decimal(9), b: Decimal(9), c: Decimal(3)}

    d, e = new_ids(2)

    def inserts_then_commit():  # nothing waits for an INSERT: all of it in one round trip
        with app.begin() as conn:
            conn.execute(insert(accounts), {"id": d, "balance": 1})
            conn.execute(insert(accounts), {"id": e, "balance": 1})

    assert trips(proxy, inserts_then_commit) == 1
    assert rows(app, [d, e]) == {d: Decimal(1), e: Decimal(1)}


def test_a_read_only_transaction_is_begin_with_its_read_then_rollback(app, proxy):
    def read():
        with app.connect() as conn:
            conn.execute(select(accounts.c.id).limit(1)).all()

    assert [trips(proxy, read) for _ in range(8)] == [2] * 8


def test_a_queued_insert_that_fails_raises_at_commit_named_and_keeps_nothing(app):
    (a,) = new_ids(1)
    with app.begin() as conn:
        conn.execute(insert(accounts), {"id": a, "balance": 1})
    for _ in range(8):  # past psycopg's prepare threshold: the INSERT is prepared by now
        b = new_ids(1)[0]
        with pytest.raises(DatabaseError, match="23505"), app.begin() as conn:
            conn.execute(insert(accounts), {"id": b, "balance": 1})
            conn.execute(insert(accounts), {"id": a, "balance": 1})  # a duplicate: queued
        assert rows(app, [b]) == {}
        with app.begin() as conn:  # the connection is clean: the next transaction works
            conn.execute(insert(accounts), {"id": b, "balance": 2})
        assert rows(app, [b]) == {b: Decimal(2)}


def test_a_queued_insert_that_fails_raises_at_the_next_statement(app):
    (a,) = new_ids(1)
    with app.begin() as conn:
        conn.execute(insert(accounts), {"id": a, "balance": 1})
    with app.connect() as conn:
        conn.execute(insert(accounts), {"id": a, "balance": 1})  # queued: nothing raised yet
        with pytest.raises(DatabaseError, match="23505"):
            conn.execute(select(accounts.c.balance).where(accounts.c.id == a))
        conn.rollback()
        assert conn.execute(select(accounts.c.balance).where(accounts.c.id == a)).scalar() == 1


def test_a_rollback_drops_the_queued_inserts(app):
    a, b = new_ids(2)
    with app.connect() as conn:
        conn.execute(insert(accounts), {"id": a, "balance": 1})
        conn.execute(insert(accounts), {"id": b, "balance": 1})
        conn.rollback()
        assert conn.execute(select(accounts.c.id).where(accounts.c.id.in_([a, b]))).all() == []
    assert rows(app, [a, b]) == {}


def test_begin_and_commit_are_never_prepared(app):
    """psycopg prepares a statement on its fifth run; a prepared COMMIT behind a failed
    statement of the same pipeline once poisoned a warm connection (SQLSTATE 26000)."""
    for _ in range(10):
        (a,) = new_ids(1)
        with app.begin() as conn:
            conn.execute(insert(accounts), {"id": a, "balance": 1})
    with app.connect() as conn:
        prepared = conn.execute(text("SELECT statement FROM pg_prepared_statements")).scalars()
        names = {statement.split()[0].upper() for statement in prepared}
    assert "INSERT" in names  # the application's statements are prepared, as psycopg does
    assert not names & {"BEGIN", "COMMIT"}


def test_a_connection_with_an_isolation_level_of_its_own_is_left_alone(app, proxy):
    """AUTOCOMMIT (DDL, migrations): every statement its own transaction, sent as usual."""
    (a,) = new_ids(1)
    with app.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(insert(accounts), {"id": a, "balance": 1})
        with pytest.raises(DatabaseError, match="23505"):
            conn.execute(insert(accounts), {"id": a, "balance": 1})  # raised at once
        assert conn.connection.driver_connection.info.transaction_status == 0  # IDLE
    assert rows(app, [a]) == {a: Decimal(1)}


def test_ddl_in_a_transaction_keeps_the_dialects_own_rule(app):
    """The DSQL dialect commits after each DDL statement (DSQL allows one per transaction):
    with the piece too, two CREATE TABLE in one ``engine.begin()`` both land, and what
    follows runs in a transaction of its own."""
    from sqlalchemy import Column, Integer, MetaData, Table
    from sqlalchemy.schema import CreateTable, DropTable

    names = [f"pipelining_ddl_{secrets.token_hex(3)}_{i}" for i in range(2)]
    tables = [Table(n, MetaData(), Column("id", Integer, primary_key=True)) for n in names]
    (a,) = new_ids(1)
    try:
        with app.begin() as conn:
            for table in tables:
                conn.execute(CreateTable(table))
            conn.execute(insert(accounts), {"id": a, "balance": 1})
        with app.connect() as conn:
            found = conn.execute(text("SELECT count(*) FROM pg_tables WHERE tablename = ANY(:n)"),
                                 {"n": names}).scalar()
        assert found == 2
        assert rows(app, [a]) == {a: Decimal(1)}
    finally:
        with app.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                conn.execute(DropTable(table, if_exists=True))
