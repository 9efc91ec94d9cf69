"""Test fixtures: a real PostgreSQL, a schema of its own per test session, migrated by Alembic.

The server is the embedded PostgreSQL unless ``DATABASE_URL`` names another one. A test
session creates its own schema (``bank_test_<random>``), migrates it to head, points the
application at it (``BANK_SCHEMA``), and takes it down at the end with Alembic and one
``DROP SCHEMA``: what Aurora DSQL offers (one database, a few schemas, no sequences,
triggers or PL/pgSQL in fixtures), so the suite never touches the tutorial's data.
"""

from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
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


def in_schema(url: str, schema: str) -> str:
    """``url`` with ``schema`` first on its search_path."""
    return make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


def _server_url() -> str:
    from bank.adapters.database import sqlalchemy_url
    from bank.adapters.embedded import ensure_running

    url = os.environ.get("DATABASE_URL")
    return sqlalchemy_url(url) if url else ensure_running()


def drop_os_user(name: str | None) -> None:
    """Delete an OS user that a test made (as root), if it exists.

    userdel refuses while a process of the user exists, zombies included: a crashed
    server's processes may wait a few seconds for init to reap them."""
    if name is None:
        return
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    for _ in range(100):
        done = subprocess.run(["userdel", name], capture_output=True, text=True)
        if done.returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"userdel {name}: {done.stderr}")


@pytest.fixture()
def stranger():
    """An ordinary OS user of this machine, made for the test with useradd (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates an OS user with useradd (CI runs as root)")
    name = f"banktest_{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    yield pwd.getpwnam(name)
    drop_os_user(name)


@pytest.fixture()
def throwaway_server():
    """A factory of embedded servers in folders of their own (not .bank/), stopped and
    removed at the end, and as root their OS users (``bank_<hash>``) deleted.

    Not under pytest's tmp_path: as root the server runs as another OS user, which must
    traverse the folders above its data, and every pytest session that starts on this
    machine resets /tmp/pytest-of-root to 0700 (so would another engineer's)."""
    from bank.adapters.embedded import EmbeddedPostgres

    top = Path(tempfile.mkdtemp(prefix="bank-test-"))
    made: list[EmbeddedPostgres] = []

    def make(name: str = "data", port: int | None = None) -> EmbeddedPostgres:
        made.append(EmbeddedPostgres(top / name, port))
        return made[-1]

    yield make
    for server in made:
        server.stop()
        drop_os_user(server.os_user)
    shutil.rmtree(top)


@pytest.fixture(scope="session")
def server_url() -> str:
    """URL of the server under test (its default schema)."""
    return _server_url()


class Schema:
    """A schema of its own on the server under test, migrated to head by Alembic."""

    def __init__(self, server: str, prefix: str = "bank_test"):
        self.server = server
        self.name = f"{prefix}_{secrets.token_hex(4)}"
        self.url = in_schema(server, self.name)
        self.admin = create_engine(server, isolation_level="AUTOCOMMIT")

    def create(self, migrate: bool = True) -> Schema:
        with self.admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {self.name}"))
        if migrate:
            command.upgrade(alembic_config(self.url), "head")
        return self

    def drop(self) -> None:
        """Down to base with Alembic, then the version table and the schema itself."""
        try:
            with self.admin.connect() as conn:
                migrated = conn.execute(
                    text("SELECT to_regclass(:t) IS NOT NULL"),
                    {"t": f"{self.name}.alembic_version"},
                ).scalar()
            if migrated:
                command.downgrade(alembic_config(self.url), "base")
                with self.admin.connect() as conn:
                    conn.execute(text(f"DROP TABLE {self.name}.alembic_version"))
            with self.admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {self.name}"))
        finally:
            self.admin.dispose()


@pytest.fixture(scope="session")
def test_schema(server_url: str) -> Iterator[Schema]:
    schema = Schema(server_url).create()
    yield schema
    schema.drop()


@pytest.fixture(scope="session")
def database_url(server_url: str, test_schema: Schema) -> Iterator[str]:
    """This session's schema, migrated to head; the application is pointed at it."""
    schema = test_schema
    from bank.adapters import database, settings

    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "BANK_SCHEMA", "BANK_POOL_SIZE",
                                            "BANK_OCC_MAX_ATTEMPTS")}
    os.environ["DATABASE_URL"] = server_url
    os.environ["BANK_SCHEMA"] = schema.name
    os.environ.setdefault("BANK_POOL_SIZE", "12")  # the concurrency tests run 8-10 threads
    # Conflicts must happen in the concurrency tests, but never run a transfer out of
    # attempts on a slow or busy machine.
    os.environ.setdefault("BANK_OCC_MAX_ATTEMPTS", "50")
    settings.get_settings.cache_clear()
    database.install_engine(None)
    try:
        yield schema.url
    finally:
        database.install_engine(None)
        settings.get_settings.cache_clear()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def app_env(server_url: str, test_schema: Schema) -> dict[str, str]:
    """The environment of a ``bank`` subprocess pointed at this session's schema."""
    env = dict(os.environ, DATABASE_URL=server_url, BANK_SCHEMA=test_schema.name)
    env.pop("CLUSTER_ENDPOINT", None)
    return env


def settings_for(server_url: str, schema: str, **env: str):
    """Settings for this session's schema, with ``env`` on top."""
    from bank.adapters.settings import Settings

    return Settings.from_env({"DATABASE_URL": server_url, "BANK_SCHEMA": schema, **env})


@pytest.fixture(scope="session")
def engine(database_url: str) -> Engine:
    """The application's own engine, bound to the test schema."""
    from bank.adapters.database import get_engine

    return get_engine()


_next_id = itertools.count(10_000_000 + secrets.randbelow(1_000_000) * 100)


@pytest.fixture(scope="session")
def make_accounts(engine: Engine):
    """Create integer-keyed accounts no other test uses; return their ids.

    Tests pick their own keys instead of truncating shared tables (DSQL has no TRUNCATE).
    """

    def make(count: int, balance: Decimal | int | str = 100) -> list[int]:
        ids = [next(_next_id) for _ in range(count)]
        with engine.connect() as conn:
            conn.execute(
                text("INSERT INTO accounts (id, balance) VALUES (:id, :balance)"),
                [{"id": i, "balance": Decimal(balance)} for i in ids],
            )
        return ids

    return make


@pytest.fixture(scope="session")
def make_uuid_accounts(engine: Engine):
    def make(count: int, balance: Decimal | int | str = 100) -> list[str]:
        with engine.connect() as conn:
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
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.services.seed import seed

    seed(SqlAlchemyUnitOfWork)
    return engine
