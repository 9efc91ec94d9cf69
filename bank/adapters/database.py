"""Engines: one factory for the three targets, built once per process.

- ``DATABASE_URL`` / embedded PostgreSQL: psycopg 3 (``postgresql+psycopg``), with a
  lock and a statement timeout set at connect (no round trip per transaction);
- Aurora DSQL: ``aurora-dsql-sqlalchemy``'s ``create_dsql_engine``. Its connector mints
  a fresh IAM token for every new connection (``DbConnectAdmin`` for ``admin``,
  ``DbConnect`` for any other role) and connects with ``sslmode=verify-full``. Pooled
  connections are recycled well before DSQL's 60-minute limit.

  The server certificate is checked against ``DSQL_ROOT_CERTS``, the Amazon Trust
  Services roots shipped in this package, not ``sslrootcert=system``: the OpenSSL bundled
  in psycopg-binary looks for a CA store where Lambda's image has none (nor many laptops
  without ``SSL_CERT_FILE``), so every connection would fail with "certificate verify
  failed".

No pre-ping: it would cost a round trip on every checkout. A dead pooled connection
(a server restart, a frozen Lambda container) fails its first statement before
anything was applied; SQLAlchemy then replaces the pool's connections and the unit of
work runs again (``bank.services.retry``), so no request fails for it.

Every engine gets two hooks:

- ``handle_error``: driver errors become the named errors of ``bank.domain.errors``
  (``bank.adapters.dberrors.translate``), on every path, ORM or Core;
- ``do_execute`` and ``do_executemany``: in a unit of work, BEGIN travels with the first
  statement (``bank.adapters.unit_of_work``).

The connections run in psycopg's autocommit mode: the unit of work begins and commits
its transactions itself. Outside one, every statement is its own transaction.
"""

from __future__ import annotations

import math
import threading
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url

from bank.adapters.dberrors import translate
from bank.adapters.settings import Settings, Target, get_settings
from bank.domain.errors import ConfigurationError, DatabaseTimeout

#: DSQL runs every transaction at snapshot isolation (REPEATABLE READ in PostgreSQL's
#: terms) and accepts this BEGIN; local transactions ask for the same.
BEGIN = b"BEGIN ISOLATION LEVEL REPEATABLE READ"
UNIT_OF_WORK = "bank_unit_of_work"  # execution option: the connection of a unit of work
#: The CA certificates that DSQL's server certificate must chain to (libpq ``sslrootcert``).
DSQL_ROOT_CERTS = Path(__file__).with_name("amazon_trust_services.pem")

#: The deadline (``time.monotonic()``) of the unit of work running in this context: a new
#: connection's ``connect_timeout`` never outlasts it (``bank.adapters.unit_of_work``).
current_deadline: ContextVar[float | None] = ContextVar("bank_deadline", default=None)


def sqlalchemy_url(url: str) -> str:
    """Accept libpq-style URLs (``postgres://``, ``postgresql://``); use psycopg 3."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def database_url(settings: Settings) -> str:
    """SQLAlchemy URL of a PostgreSQL target (starts the embedded server if needed)."""
    if settings.target is Target.URL:
        assert settings.database_url
        return sqlalchemy_url(settings.database_url)
    if settings.target is Target.EMBEDDED:
        try:
            from bank.adapters.embedded import ensure_running
        except ImportError:  # a Lambda artifact ships no embedded server
            raise ConfigurationError(
                "no database configured: set CLUSTER_ENDPOINT (Aurora DSQL) or DATABASE_URL"
            ) from None
        return ensure_running(settings)
    raise ValueError("Aurora DSQL has no static URL: its password is minted per connection")


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def local_options(settings: Settings) -> str:
    """Server settings sent with the connection (libpq ``options``): DSQL's isolation for
    every transaction, however it begins (a plain BEGIN, a raw connection), and time limits."""
    options = [
        "-c default_transaction_isolation=repeatable\\ read",
        f"-c lock_timeout={_ms(settings.lock_timeout_s)}",
        f"-c statement_timeout={_ms(settings.statement_timeout_s)}",
    ]
    if settings.schema:
        options.append(f"-c search_path={settings.schema}")
    return " ".join(options)


def make_engine(settings: Settings, **overrides: Any) -> Engine:
    pool: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_recycle": settings.pool_recycle_s,
    }
    pool.update(overrides)
    connect_timeout = max(1, round(settings.connect_timeout_s))
    # psycopg's autocommit mode: transactions are the unit of work's, which sends BEGIN
    # itself, with its first statement. Without a unit of work, each statement is a
    # transaction of its own (on this engine, ``engine.begin()`` opens none).
    pool["isolation_level"] = "AUTOCOMMIT"
    if settings.target is Target.DSQL:
        from aurora_dsql_sqlalchemy import create_dsql_engine

        assert settings.cluster_endpoint and settings.region
        engine = create_dsql_engine(
            host=settings.cluster_endpoint,
            user=settings.db_user,
            sslrootcert=str(DSQL_ROOT_CERTS),
            application_name="bank",
            connect_args={"region": settings.region, "connect_timeout": connect_timeout},
            **pool,
        )
        if settings.schema:
            _set_search_path(engine, settings.schema)
        return hooked(engine)
    return hooked(local_engine(database_url(settings), settings, **pool))


def local_engine(url: str, settings: Settings, **engine_kwargs: Any) -> Engine:
    """An engine on a local PostgreSQL (``DATABASE_URL``, the embedded server), in strict
    mode or not (``settings.strict``); Alembic's ``env.py`` makes its engine here too."""
    parsed = make_url(sqlalchemy_url(url))
    options: list[str | None] = [*_own_options(parsed), local_options(settings)]
    parsed = parsed.difference_update_query(["options"])
    connect_timeout = max(1, round(settings.connect_timeout_s))
    connect_args: dict[str, Any] = {"connect_timeout": connect_timeout}
    if "application_name" not in parsed.query:
        connect_args["application_name"] = "bank"  # in pg_stat_activity, as on DSQL
    if settings.strict:
        from bank.adapters.strict import engine as strict

        deadline = current_deadline.get()
        if deadline is not None:  # set up within the caller's time, as a connect would be
            connect_timeout = max(1, min(connect_timeout,
                                         math.ceil(deadline - time.monotonic())))
        parsed, extra, strict_options = strict.engine_arguments(
            parsed, preloaded=settings.target is Target.EMBEDDED, data_dir=settings.data_dir,
            pg_config=settings.pg_config, connect_timeout=connect_timeout)
        connect_args.update(extra)
        options.append(strict_options)
    else:
        options.append("-c dsql_strict.enabled=off")  # a server without the module ignores it
    connect_args["options"] = " ".join(filter(None, options))
    return create_engine(parsed, connect_args=connect_args, **engine_kwargs)


def setup_engine(url: str, **engine_kwargs: Any) -> Engine:
    """A local superuser's engine for set-up and inspection (benchmarks, ``bank chaos``),
    not the application's: plain PostgreSQL, strict mode off for its sessions."""
    parsed = make_url(sqlalchemy_url(url))
    options = _own_options(parsed) + ["-c dsql_strict.enabled=off"]
    return create_engine(parsed.difference_update_query(["options"]),
                         connect_args={"options": " ".join(options)}, **engine_kwargs)


def _own_options(url: URL) -> list[str]:
    """The libpq ``options`` a URL carries itself (``?options=-c...``): kept, first."""
    own = url.query.get("options")
    return [own] if isinstance(own, str) and own else []


def hooked(engine: Engine) -> Engine:
    """``engine`` with the hooks every engine of the project has (see the module doc)."""
    event.listen(engine, "handle_error", _named_error)
    event.listen(engine, "do_execute", _begin_with_first_statement)
    event.listen(engine, "do_executemany", _begin_with_first_statements)
    event.listen(engine, "do_connect", _connect_within_deadline)
    return engine


def _connect_within_deadline(dialect, connection_record, cargs, cparams) -> None:
    """``do_connect``: no longer than the caller's deadline allows (whole seconds, as libpq
    counts them). Not called for DSQL's connector, whose timeout stays the setting's."""
    deadline = current_deadline.get()
    if deadline is None:
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DatabaseTimeout("no time left to connect; nothing was committed")
    cparams["connect_timeout"] = max(1, min(int(cparams.get("connect_timeout", 5)),
                                            math.ceil(remaining)))


def _set_search_path(engine: Engine, schema: str) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, connection_record):  # one round trip per new connection
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        dbapi_connection.execute(f"SET search_path TO {schema}")
        dbapi_connection.autocommit = autocommit


def _named_error(context: ExceptionContext) -> BaseException | None:
    """``handle_error``: return the named error; SQLAlchemy raises it (after invalidating
    the pool if the connection was lost)."""
    return translate(context.original_exception)


def _begins_a_unit_of_work(cursor, context) -> bool:
    return not (
        context is None
        or context.isddl
        or not context.execution_options.get(UNIT_OF_WORK)
        or cursor.connection.info.transaction_status != pq.TransactionStatus.IDLE
    )


def _begin_with_first_statement(cursor, statement, parameters, context) -> bool | None:
    """``do_execute``: in a unit of work, send BEGIN in one pipeline with the first
    statement: one round trip where psycopg would take two."""
    if not _begins_a_unit_of_work(cursor, context):
        return None  # SQLAlchemy executes the statement as usual
    begin_with(cursor, statement, parameters)
    return True


def _begin_with_first_statements(cursor, statement, parameters, context) -> bool | None:
    """``do_executemany`` (a statement with many rows of parameters): the same, so that
    the rows too wait for the unit of work's commit."""
    if not _begins_a_unit_of_work(cursor, context):
        return None
    with cursor.connection.pipeline():
        cursor.execute(BEGIN)
        cursor.executemany(statement, parameters)
    return True


def begin_with(cursor: psycopg.Cursor, statement: Any, parameters: Any) -> None:
    """BEGIN and ``statement`` in one pipeline: one round trip. The cursor keeps the
    statement's result."""
    with cursor.connection.pipeline():
        cursor.execute(BEGIN)
        cursor.execute(statement, parameters)


_engine: Engine | None = None
_lock = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine: module-level state a warm Lambda container reuses."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = make_engine(get_settings())
    return _engine


def install_engine(engine: Engine | None) -> None:
    """Replace the process-wide engine (a tool that needs a bigger pool; tests).

    ``None`` forgets it: the next ``get_engine()`` builds one from the settings.
    """
    global _engine
    with _lock:
        old, _engine = _engine, engine
    if old is not None and old is not engine:
        old.dispose()
