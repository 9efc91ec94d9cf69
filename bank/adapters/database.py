"""Engines: one factory for the application's targets, built once per process.

- ``DATABASE_URL``: psycopg 3 (``postgresql+psycopg``), with DSQL's isolation, a lock and
  a statement timeout set at connect (no round trip per transaction);
- ``CLUSTER_ENDPOINT``: Aurora DSQL, through ``aurora-dsql-sqlalchemy``'s
  ``create_dsql_engine``. Its connector mints a fresh IAM token for every new connection
  (``DbConnectAdmin`` for ``admin``, ``DbConnect`` for any other role) and connects with
  ``sslmode=verify-full``. Pooled connections are recycled well before DSQL's 60-minute
  limit.

  The server certificate is checked against ``DSQL_ROOT_CERTS``, the Amazon Trust
  Services roots shipped in this package, not ``sslrootcert=system``: the OpenSSL bundled
  in psycopg-binary looks for a CA store where Lambda's image has none (nor many laptops
  without ``SSL_CERT_FILE``), so every connection would fail with "certificate verify
  failed".

  ``BANK_DSQL_LOCAL`` (a laptop only) points the same engine at a local DSQL endpoint
  (``bank endpoint``): libpq connects to its address (``hostaddr``, ``port``) and verifies
  its certificate for the cluster's name against its CA instead of the Amazon roots.
  Everything else (tokens, ``verify-full``, the dialect) stays as it is for a cluster.
- neither: a ``ConfigurationError``. On a laptop the developer kit gives the application
  its engine (``install_engine``; ``bank.kit.local``: the embedded server, strict mode).

No pre-ping: it would cost a round trip on every checkout. A dead pooled connection
(a server restart, a frozen Lambda container) fails its first statement before
anything was applied; SQLAlchemy then replaces the pool's connections and the unit of
work runs again (``bank.services.retry``), so no request fails for it.

Transactions are SQLAlchemy's, on every engine: ``engine.begin()``, ``Session.begin()``
and the unit of work are atomic. Every engine gets (``hooked``):

- ``bank.adapters.pipelining.pipeline_transactions``: BEGIN travels with a transaction's
  first statement and COMMIT with its pending writes (two round trips for a transfer);
- ``handle_error``: driver errors become the named errors of ``bank.adapters.errors``
  (``bank.adapters.dberrors.translate``), on every path, ORM or Core, COMMIT included;
- ``do_connect``: a new connection's timeout never outlasts the caller's deadline.

DDL runs on connections with ``execution_options(isolation_level="AUTOCOMMIT")``
(migrations, the ch07 lab): DSQL allows one DDL statement per transaction.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url

from bank.adapters.dberrors import translate
from bank.adapters.deadline import guard
from bank.adapters.errors import ConfigurationError, DatabaseTimeout
from bank.adapters.pipelining import COMMIT_OPTION, pipeline_transactions
from bank.adapters.settings import Settings, Target, get_settings

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


def pool_arguments(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The pool's arguments for ``create_engine`` (sized for Lambda: one request at a time)."""
    return {"pool_size": settings.pool_size, "max_overflow": settings.max_overflow,
            "pool_recycle": settings.pool_recycle_s, **overrides}


def make_engine(settings: Settings, **overrides: Any) -> Engine:
    """The application's engine for ``settings`` (``overrides``: pool arguments)."""
    pool = pool_arguments(settings, **overrides)
    if settings.target is Target.DSQL:
        from aurora_dsql_sqlalchemy import create_dsql_engine

        assert settings.cluster_endpoint and settings.region
        connect_args: dict[str, Any] = {
            "region": settings.region,
            "connect_timeout": max(1, round(settings.connect_timeout_s))}
        rootcert = DSQL_ROOT_CERTS
        if settings.dsql_local is not None:
            hostaddr, port, rootcert = local_endpoint(settings.dsql_local)
            connect_args.update(hostaddr=hostaddr, port=port)
        engine = create_dsql_engine(
            host=settings.cluster_endpoint,
            user=settings.db_user,
            sslrootcert=str(rootcert),
            application_name="bank",
            connect_args=connect_args,
            **pool,
        )
        if settings.schema:
            _set_search_path(engine, settings.schema)
        return hooked(engine)
    if settings.target is Target.URL:
        assert settings.database_url
        return hooked(url_engine(settings.database_url, settings, **pool))
    raise ConfigurationError(
        "no database configured: set CLUSTER_ENDPOINT (Aurora DSQL) or DATABASE_URL; on a "
        "laptop the developer kit provides one (the `bank` command, the tests)"
    )


def local_endpoint(folder: Path) -> tuple[str, int, Path]:
    """A local DSQL endpoint's (address, port, CA file), from the folder ``BANK_DSQL_LOCAL``
    names: ``address`` holds ``<ip>:<port>`` while the endpoint runs, ``ca.pem`` its CA."""
    ca, address = folder / "ca.pem", folder / "address"
    try:
        host, _, port = address.read_text().strip().rpartition(":")
        number = int(port)
    except (OSError, ValueError):
        raise ConfigurationError(
            f"BANK_DSQL_LOCAL={folder}: no endpoint address in {address}; start the local "
            "DSQL endpoint (bank endpoint), or unset BANK_DSQL_LOCAL to reach the cluster"
        ) from None
    if not ca.is_file():
        raise ConfigurationError(f"BANK_DSQL_LOCAL={folder}: no CA certificate {ca}")
    return host, number, ca


def url_engine(url: str, settings: Settings, *, drivername: str | None = None,
               options: tuple[str, ...] = (), connect_args: dict[str, Any] | None = None,
               **engine_kwargs: Any) -> Engine:
    """An engine (without ``hooked``'s hooks) on the PostgreSQL at ``url``, connecting as the
    application does: DSQL's isolation, the time limits, ``settings.schema``, named
    ``bank`` in ``pg_stat_activity``. ``drivername``: another dialect for the same server
    (the developer kit's strict mode speaks ``auroradsql+psycopg`` to it); ``options``:
    more server settings; ``connect_args``: more driver arguments."""
    parsed = make_url(sqlalchemy_url(url))
    own = parsed.query.get("options")  # the URL's own ``?options=-c...``: kept, first
    server_options = [own if isinstance(own, str) else "", local_options(settings), *options]
    parsed = parsed.difference_update_query(["options"])
    if drivername:
        parsed = parsed.set(drivername=drivername)
    arguments: dict[str, Any] = {"connect_timeout": max(1, round(settings.connect_timeout_s))}
    if "application_name" not in parsed.query:
        arguments["application_name"] = "bank"  # in pg_stat_activity, as on DSQL
    arguments.update(connect_args or {})
    arguments["options"] = " ".join(filter(None, server_options))
    # The hstore probe of SQLAlchemy's PostgreSQL dialect opens a SAVEPOINT, which DSQL
    # (and strict mode) refuse; nothing here uses hstore.
    engine_kwargs.setdefault("use_native_hstore", False)
    return create_engine(parsed, connect_args=arguments, **engine_kwargs)


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


@contextlib.contextmanager
def connection_until(engine: Engine, deadline: float | None,
                     **execution_options: Any) -> Iterator[Connection]:
    """A connection of ``engine`` (``execution_options`` applied) whose connect and every
    wait end by ``deadline`` (``time.monotonic()``): past it, the running statement is
    cancelled (``bank.adapters.deadline``). None: no deadline."""
    token = current_deadline.set(deadline)
    try:
        connection = engine.connect()
    finally:
        current_deadline.reset(token)
    with connection:
        if execution_options:
            connection = connection.execution_options(**execution_options)
        with guard(connection.connection.driver_connection, deadline):  # type: ignore[arg-type]
            yield connection


_engine: Engine | None = None
_lock = threading.Lock()
_factory: Callable[[], Engine] | None = None


def get_engine() -> Engine:
    """The process-wide engine: module-level state a warm Lambda container reuses."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = _factory() if _factory is not None else make_engine(get_settings())
    return _engine


def set_engine_factory(factory: Callable[[], Engine] | None) -> None:
    """Who builds the process-wide engine from now on: ``factory`` (the developer kit's,
    for the embedded server and strict mode: ``bank.kit.local``), or with None the
    settings' (``make_engine``). The engine already built, if any, is forgotten."""
    global _factory
    _factory = factory
    install_engine(None)


def install_engine(engine: Engine | None) -> None:
    """Replace the process-wide engine (a tool that needs a bigger pool; tests).

    ``None`` forgets it: the next ``get_engine()`` builds one from the settings.
    """
    global _engine
    with _lock:
        old, _engine = _engine, engine
    if old is not None and old is not engine:
        old.dispose()
