"""Test fixtures: a real PostgreSQL, a schema of its own per test session, migrated by Alembic.

The server is the embedded PostgreSQL unless ``DATABASE_URL`` names another one. A test
session creates its own schema (``bank_test_<random>``), migrates it to head, points the
application at it (``BANK_SCHEMA``), and takes it down at the end with Alembic and one
``DROP SCHEMA``: what Aurora DSQL offers (one database, a few schemas, no sequences,
triggers or PL/pgSQL in fixtures), so the suite never touches the tutorial's data.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
#: The suite points at an Aurora DSQL cluster (CLUSTER_ENDPOINT, no DATABASE_URL): the tests
#: that need a local server (a superuser, backends to kill, a proxy, strict mode, the
#: embedded server) are skipped there, each saying why.
ON_DSQL = bool(os.environ.get("CLUSTER_ENDPOINT")) and not os.environ.get("DATABASE_URL")
LOCAL_ONLY = {
    "strict": "strict mode emulates DSQL on a local server",
    "test_embedded.py": "the embedded PostgreSQL",
    "test_tls.py": "a local TLS terminator in front of a local server",
    "test_chaos.py": "it crashes a server of its own",
    "test_dsql_path.py": "strict mode's DSQL path on a local server",
    "test_faults.py": "a proxy before the server, backends killed by a superuser",
    "test_stateful.py": "backends killed by a superuser between steps",
}
if not ON_DSQL:
    # The suite runs in DSQL strict mode unless told otherwise (BANK_STRICT=0): the server
    # refuses what Aurora DSQL refuses, and the application speaks the auroradsql dialect.
    os.environ.setdefault("BANK_STRICT", "1")
# The tests run the application as the developer kit does: the kit builds its engine
# (bank.kit.local), from the settings at the time of each build.
from bank.kit import local as _local  # noqa: E402

_local.use()

#: A local DSQL (the endpoint, an auroradsql engine through it), as any project's suite gets
#: it: the kit's plugin (``local_dsql``...; tests/integration/conftest.py names them).
pytest_plugins = ["bank.kit.pytest_plugin"]


def pytest_collection_modifyitems(config, items):
    for item in items:  # the tier is the folder: tests/unit, tests/integration, tests/e2e
        tier = item.path.relative_to(ROOT / "tests").parts[0]
        if tier in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))
    if not ON_DSQL:
        return
    for item in items:
        for part, why in LOCAL_ONLY.items():
            if part in item.path.parts or item.path.name == part:
                item.add_marker(pytest.mark.skip(reason=f"local only on a cluster: {why}"))


def engine_for(url: str, hooks: bool = True, **engine_kwargs) -> Engine:
    """An engine on ``url`` made as the application makes its own (strict mode and all;
    without ``hooks``, driver errors stay raw and pre-ping can replace a killed connection)."""
    from bank.adapters.settings import Settings
    from bank.kit import local

    settings = dataclasses.replace(Settings.from_env(), schema=None)
    isolation = engine_kwargs.pop("isolation_level", None) if hooks else None
    engine = local.engine(url, settings=settings, hooks=hooks, **engine_kwargs)
    # The application's hooks pipeline transactions; a level of its own is given to every
    # connection as an execution option, which they leave alone (bank.adapters.pipelining).
    return engine.execution_options(isolation_level=isolation) if isolation else engine


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
    from bank.kit import local

    return local.server_url()


def drop_os_user(name: str | None) -> None:
    """Delete an OS user that a test made (as root), if it exists."""
    from bank.kit.embedded import delete_os_user

    if name is not None:
        delete_os_user(name)


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
    from bank.kit.embedded import EmbeddedPostgres

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
    """URL of the local server under test (its default schema). A test that needs it needs
    a local server (a superuser, a static URL): on a cluster it is skipped."""
    if ON_DSQL:
        pytest.skip("local only on a cluster: a static URL and a superuser of a local server")
    return _server_url()


class Schema:
    """A schema of its own on the server under test, migrated to head by Alembic.

    ``server`` None: the Aurora DSQL cluster of CLUSTER_ENDPOINT (Alembic then connects
    as the application does, with BANK_SCHEMA naming the schema).
    """

    def __init__(self, server: str | None, prefix: str = "bank_test"):
        self.server = server
        self.name = f"{prefix}_{secrets.token_hex(4)}"
        if server is None:
            from bank.adapters.database import make_engine
            from bank.adapters.settings import Settings

            self.url = None
            # AUTOCOMMIT, as for a local server: each DDL statement is committed on its own
            # (a plain connect() would roll CREATE SCHEMA back when the block ends).
            self.admin = make_engine(dataclasses.replace(Settings.from_env(), schema=None)
                                     ).execution_options(isolation_level="AUTOCOMMIT")
        else:
            self.url = in_schema(server, self.name)
            # Pre-pinged: fault tests kill backends, this engine's included.
            self.admin = engine_for(server, hooks=False, isolation_level="AUTOCOMMIT",
                                    pool_pre_ping=True)

    def alembic(self, command_name: str, revision: str) -> None:
        if self.url is not None:
            getattr(command, command_name)(alembic_config(self.url), revision)
            return
        saved = os.environ.get("BANK_SCHEMA")
        os.environ["BANK_SCHEMA"] = self.name
        try:
            cfg = Config(str(ROOT / "alembic.ini"))
            cfg.set_main_option("script_location", str(ROOT / "alembic"))
            cfg.attributes["configure_logger"] = False
            getattr(command, command_name)(cfg, revision)
        finally:
            if saved is None:
                os.environ.pop("BANK_SCHEMA", None)
            else:
                os.environ["BANK_SCHEMA"] = saved

    def create(self, migrate: bool = True) -> Schema:
        with self.admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {self.name}"))
        if migrate:
            self.alembic("upgrade", "head")
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
                self.alembic("downgrade", "base")
                with self.admin.connect() as conn:
                    conn.execute(text(f"DROP TABLE {self.name}.alembic_version"))
            with self.admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {self.name}"))
        finally:
            self.admin.dispose()


@pytest.fixture(scope="session")
def test_schema() -> Iterator[Schema]:
    schema = Schema(None if ON_DSQL else _server_url()).create()
    yield schema
    schema.drop()


@pytest.fixture(scope="session")
def database_url(test_schema: Schema) -> Iterator[str | None]:
    """This session's schema, migrated to head; the application is pointed at it. Its URL,
    locally; None on a cluster, where the application finds it by BANK_SCHEMA."""
    schema = test_schema
    from bank.adapters import database, settings
    from bank.kit import local

    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "BANK_SCHEMA", "BANK_POOL_SIZE",
                                            "BANK_OCC_MAX_ATTEMPTS")}
    if schema.server is not None:
        os.environ["DATABASE_URL"] = schema.server
    os.environ["BANK_SCHEMA"] = schema.name
    os.environ.setdefault("BANK_POOL_SIZE", "12")  # the concurrency tests run 8-10 threads
    # Conflicts must happen in the concurrency tests, but never run a transfer out of
    # attempts on a slow or busy machine.
    os.environ.setdefault("BANK_OCC_MAX_ATTEMPTS", "50")
    settings.get_settings.cache_clear()
    local.use()  # the application's engine, as the kit makes it (strict mode and all)
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
def app_env(database_url, test_schema: Schema) -> dict[str, str]:
    """The environment of a ``bank`` subprocess pointed at this session's schema."""
    env = dict(os.environ, BANK_SCHEMA=test_schema.name)
    if test_schema.server is not None:
        env["DATABASE_URL"] = test_schema.server
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
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.services.seed import seed

    seed(SqlAlchemyUnitOfWork)
    return engine
