"""Test fixtures: a real PostgreSQL, a fresh database per test session, migrated by Alembic.

The server is the embedded PostgreSQL unless ``DATABASE_URL`` names another one; the
tests create their own database on it (``bank_test_<random>``) and drop it at the end,
so they never touch the data of the tutorial database.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def _server_url() -> str:
    from bank.database import sqlalchemy_url
    from bank.embedded import ensure_running

    url = os.environ.get("DATABASE_URL")
    return sqlalchemy_url(url) if url else ensure_running()


@pytest.fixture(scope="session")
def server_url() -> str:
    """URL of the server under test (any database on it)."""
    return _server_url()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh database for this test session, migrated to head; DATABASE_URL points at it."""
    name = f"bank_test_{secrets.token_hex(4)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    command.upgrade(alembic_config(url), "head")

    # Point the application (settings, engine, handlers) at the test database.
    from bank import database, settings

    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("BANK_POOL_SIZE", "12")  # the concurrency tests run 8-10 threads
    # Conflicts must happen in the concurrency tests, but never run a transfer out of
    # attempts on a slow or busy machine.
    os.environ.setdefault("BANK_OCC_MAX_ATTEMPTS", "50")
    settings.get_settings.cache_clear()
    database.install_engine(None)
    try:
        yield url
    finally:
        database.install_engine(None)
        settings.get_settings.cache_clear()
        if saved is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = saved
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Engine:
    """The application's own engine, bound to the test database."""
    from bank.database import get_engine

    return get_engine()


_next_id = itertools.count(10_000_000 + secrets.randbelow(1_000_000) * 100)


@pytest.fixture(scope="session")
def make_accounts(engine: Engine):
    """Create integer-keyed accounts no other test uses; return their ids.

    Tests pick their own keys instead of truncating shared tables (and DSQL has no
    TRUNCATE anyway).
    """

    def make(count: int, balance: Decimal | int | str = 100) -> list[int]:
        ids = [next(_next_id) for _ in range(count)]
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO accounts (id, balance) VALUES (:id, :balance)"),
                [{"id": i, "balance": Decimal(balance)} for i in ids],
            )
        return ids

    return make


@pytest.fixture(scope="session")
def make_uuid_accounts(engine: Engine):
    def make(count: int, balance: Decimal | int | str = 100) -> list[str]:
        with engine.begin() as conn:
            rows = conn.execute(
                text(
                    "INSERT INTO accounts2 (balance) SELECT :balance "
                    "FROM generate_series(1, :n) RETURNING id"
                ),
                {"n": count, "balance": Decimal(balance)},
            ).all()
        return [str(r[0]) for r in rows]

    return make


def balances(engine: Engine, ids, table: str = "accounts") -> dict:
    """Balances of the given accounts, read in one statement."""
    ids = list(ids)
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT id, balance FROM {table} WHERE id = ANY(:ids)"),  # table: test constant
            {"ids": ids},
        ).all()
    return {str(k) if table == "accounts2" else k: v for k, v in rows}


@pytest.fixture(scope="session")
def seeded(engine: Engine) -> Engine:
    from bank.seed import seed

    seed(engine)
    return engine
