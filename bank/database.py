"""Engines and sessions: one factory for the three targets, built once per process.

- ``DATABASE_URL`` / embedded PostgreSQL: psycopg 3 at REPEATABLE READ, the isolation
  DSQL gives every transaction (explicit or single-statement), so local runs
  conflict the way DSQL does.
- Aurora DSQL: ``aurora-dsql-sqlalchemy``'s ``create_dsql_engine``. Its connector mints
  a fresh IAM token for every new connection (admin token for ``admin``, the
  ``DbConnect`` token for any other role), and connects with ``sslmode=verify-full``.
  Pooled connections are recycled well before DSQL's 60-minute limit.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from bank.settings import Settings, Target, get_settings

LOCAL_ISOLATION = "REPEATABLE READ"


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
        from bank.embedded import ensure_running

        return ensure_running(settings.data_dir)
    raise ValueError("Aurora DSQL has no static URL: its password is minted per connection")


def make_engine(settings: Settings, **overrides) -> Engine:
    pool = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_recycle": settings.pool_recycle_s,
    }
    pool.update(overrides)
    if settings.target is Target.DSQL:
        from aurora_dsql_sqlalchemy import create_dsql_engine

        assert settings.cluster_endpoint and settings.region
        return create_dsql_engine(
            host=settings.cluster_endpoint,
            user=settings.db_user,
            application_name="bank",
            connect_args={"region": settings.region},
            # A frozen Lambda container may find its connection gone when it thaws.
            pool_pre_ping=True,
            **pool,
        )
    return create_engine(
        database_url(settings),
        isolation_level=LOCAL_ISOLATION,
        # Statements run outside an explicit transaction (the one-statement transfer)
        # get DSQL's isolation too.
        connect_args={"options": "-c default_transaction_isolation=repeatable\\ read"},
        **pool,
    )


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

