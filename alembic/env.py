"""Alembic environment: the same three database targets as the application.

``sqlalchemy.url`` in the Alembic config (tests set it) wins; otherwise
``bank.settings``: DATABASE_URL, else CLUSTER_ENDPOINT (Aurora DSQL), else the
embedded PostgreSQL.

On Aurora DSQL the connection runs in AUTOCOMMIT: every DDL statement, and every
write to ``alembic_version``, is a transaction of its own (DSQL allows one DDL
statement per transaction and no DML beside it). ``bank.alembic_dsql.AuroraDSQLImpl`` makes
indexes ``CREATE INDEX ASYNC`` and waits for their build jobs.
"""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.engine import URL

import bank.alembic_dsql  # noqa: F401  (registers Alembic's implementation for "auroradsql")
from bank.database import database_url, make_engine, sqlalchemy_url
from bank.models import Base
from bank.settings import Settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata
COMMON = {
    "target_metadata": target_metadata,
    "compare_type": True,
    "compare_server_default": True,
}


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
    if connection.dialect.name == bank.alembic_dsql.DSQL_DIALECT:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
    context.configure(connection=connection, transaction_per_migration=True, **COMMON)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    url = configured_url()
    if url is not None:

        engine = create_engine(url, poolclass=pool.NullPool)
    else:
        settings = Settings.from_env()
        if settings.is_dsql:
            engine = make_engine(settings)
        else:

            engine = create_engine(database_url(settings), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            do_run_migrations(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
