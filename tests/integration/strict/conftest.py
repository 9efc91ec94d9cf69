"""Strict-mode servers for these tests: the embedded wheel's PostgreSQL (always), and the
second server the suite is pointed at (``DATABASE_URL``; CI's is the machine's PostgreSQL
on 127.0.0.1:5432), when there is one."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest

from tests.integration.strict.clients import CLIENTS, Direct
from tests.integration.strict.server import Target, ThrowawayServer, system_target


@pytest.fixture(scope="session")
def embedded_target():
    target = ThrowawayServer().start()
    yield target
    try:
        _assert_clean_log(target)
    finally:
        target.close()


@pytest.fixture(scope="session")
def system_pg_target():
    target, why = system_target(SECOND_SERVER)
    if target is None:
        pytest.skip(f"strict mode on the PostgreSQL at 127.0.0.1:5432 is not available: {why}")
    yield target
    target.close()


#: The second server, the suite's DATABASE_URL (CI points it at the machine's PostgreSQL):
#: its cases are collected only when one is configured.
SECOND_SERVER = os.environ.get("DATABASE_URL")


@pytest.fixture(params=["embedded"] + (["system-pg"] if SECOND_SERVER else []))
def target(request) -> Target:
    name = "embedded_target" if request.param == "embedded" else "system_pg_target"
    return request.getfixturevalue(name)


@pytest.fixture
def schema(target):
    """A schema of its own for one test, on the search_path of connections made by ``db``."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with target.connect() as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield name
    with target.connect() as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def db(target, schema):
    """Open autocommit connections on the test's schema: ``db()``, ``db(cursor_factory=...)``."""
    opened: list[psycopg.Connection] = []

    def connect(**kwargs) -> psycopg.Connection:
        conn = target.connect(**kwargs)
        conn.execute(f"SET search_path = {schema}, public")
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture(params=CLIENTS, ids=lambda c: c.name)
def client(request, target, schema):
    """Open sessions of one client kind (psycopg 3, its async form, psycopg 2, asyncpg) on
    the test's schema: ``client()``, ``client(options="-c ...")``."""
    opened = []

    def open_session(options: str = ""):
        session = request.param(Direct.to(target), f"{schema}, public", options)
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


def _assert_clean_log(target: Target) -> None:
    """No crash, no assertion failure, no PANIC/FATAL (other than shutdown's) in the log."""
    text = target.log_file.read_text(errors="replace") if target.log_file else ""
    bad = [line for line in text.splitlines()
           if any(word in line for word in ("PANIC", "TRAP:", "terminated by signal",
                                            "server process", "WARNING:  leaked",
                                            "WARNING:  resource was not closed"))]
    assert not bad, "server log shows trouble:\n" + "\n".join(bad)
