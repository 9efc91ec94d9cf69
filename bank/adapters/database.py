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

Transactions are SQLAlchemy's, on every engine: ``engine.begin()``, ``Session.begin()``
and the unit of work are atomic. Every engine gets:

- ``bank.adapters.pipelining.pipeline_transactions``: BEGIN travels with a transaction's
  first statement and COMMIT with its pending writes (two round trips for a transfer);
- ``handle_error``: driver errors become the named errors of ``bank.domain.errors``
  (``bank.adapters.dberrors.translate``), on every path, ORM or Core, COMMIT included;
- ``do_connect``: a new connection's timeout never outlasts the caller's deadline.

DDL runs on connections with ``execution_options(isolation_level="AUTOCOMMIT")``
(migrations, the ch07 lab): DSQL allows one DDL statement per transaction.
"""

from __future__ import annotations

import math
import threading
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url

from bank.adapters.dberrors import translate
from bank.adapters.pipelining import COMMIT_OPTION, pipeline_transactions
from bank.adapters.settings import Settings, Target, get_settings
from bank.domain.errors import ConfigurationError, DatabaseTimeout

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
    event.listen(engine, "do_connect", _connect_within_deadline)
    return pipeline_transactions(engine)


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
    the pool if the connection was lost). A lost connection during COMMIT leaves the
    outcome unknown."""
    execution = context.execution_context
    during_commit = execution is not None and bool(execution.execution_options.get(COMMIT_OPTION))
    return translate(context.original_exception, during_commit=during_commit)


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
