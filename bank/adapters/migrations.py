"""Alembic from code: what ``alembic upgrade head`` does, on one of the application's engines.

The revisions and ``env.py`` are the repository's ``alembic/`` folder, which sits next to
``bank/`` in the repository and in the migration function's artifact (the Makefile's
``build-MigrateFunction``). ``env.py`` keeps DSQL's rules on this path too: AUTOCOMMIT, one
DDL statement per transaction, ``CREATE INDEX ASYNC`` waited for, OC001 retried.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine

from bank.adapters.database import connection_until
from bank.adapters.settings import project_root

SCRIPT_LOCATION = project_root() / "alembic"


def config(connection: Connection | None = None) -> Config:
    """An Alembic configuration without alembic.ini: the script location, and the
    connection ``env.py`` runs on (instead of one it would open itself)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.attributes["configure_logger"] = False
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head", deadline: float | None = None) -> str | None:
    """Migrate to ``revision``; the revision the database is at afterwards. Past
    ``deadline`` (``time.monotonic()``) the statement running is cancelled: nothing of the
    migration goes on after its caller has answered."""
    with connection_until(engine, deadline) as connection:
        command.upgrade(config(connection), revision)
    with connection_until(engine, deadline) as connection:
        return MigrationContext.configure(connection).get_current_revision()
