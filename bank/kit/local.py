"""The developer kit's database: where it is, and the engine it gives the application.

The application knows two targets (``DATABASE_URL``, ``CLUSTER_ENDPOINT``:
``bank.adapters.database``). On a laptop and in the tests the kit adds:

- neither set: the embedded PostgreSQL (``bank.kit.embedded``), started if needed;
- DSQL strict mode (``bank.kit.strict``): the local server refuses what DSQL refuses, and
  the application speaks the ``auroradsql`` dialect to it, as it does to DSQL. On for the
  embedded server; ``BANK_STRICT=1`` turns it on for ``DATABASE_URL`` (a superuser, and
  the server's headers installed), ``BANK_STRICT=0`` off.

``use()`` makes the kit build the application's process-wide engine
(``bank.adapters.database.set_engine_factory``): handlers, services and Alembic then run
unchanged on the local server. Every entry point of the kit calls it first (the ``bank``
command, the tests, the benchmarks' clients). On Aurora DSQL (``CLUSTER_ENDPOINT``) it
leaves the application's own engine alone.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from bank.adapters import database
from bank.adapters.database import hooked, pool_arguments, sqlalchemy_url, url_engine
from bank.adapters.settings import Settings, Target, get_settings
from bank.kit.settings import KitSettings, get_kit_settings

__all__ = ["KitSettings", "embedded", "engine", "get_kit_settings", "server_url",
           "setup_engine", "strict", "use"]

#: What a session says when strict mode is off (a server without the module ignores it).
STRICT_OFF = "-c dsql_strict.enabled=off"


def embedded(settings: Settings | None = None) -> bool:
    """Is the database the embedded server (no target of the application's set)?"""
    return (settings or get_settings()).target is Target.NONE


def server_url(settings: Settings | None = None, kit: KitSettings | None = None) -> str:
    """The local server's SQLAlchemy URL: ``DATABASE_URL``'s, or the embedded server's
    (started if needed)."""
    settings = settings or get_settings()
    if settings.target is Target.URL:
        assert settings.database_url
        return sqlalchemy_url(settings.database_url)
    if settings.target is Target.DSQL:
        raise ValueError("Aurora DSQL has no static URL: its password is minted per connection")
    from bank.kit.embedded import ensure_running

    return ensure_running(kit or get_kit_settings())


def strict(settings: Settings | None = None, kit: KitSettings | None = None) -> bool:
    settings, kit = settings or get_settings(), kit or get_kit_settings()
    if settings.target is Target.DSQL:
        return False
    return kit.strict if kit.strict is not None else embedded(settings)


def engine(url: str | None = None, *, settings: Settings | None = None,
           kit: KitSettings | None = None, hooks: bool = True, **engine_kwargs: Any) -> Engine:
    """An application engine (the application's connection settings, and with ``hooks``
    its hooks: ``bank.adapters.database.hooked``) on the local server, ``url`` or
    ``server_url()``, in strict mode or not."""
    settings, kit = settings or get_settings(), kit or get_kit_settings()
    url = url or server_url(settings, kit)
    finish = hooked if hooks else (lambda e: e)
    if not strict(settings, kit):
        return finish(url_engine(url, settings, options=(STRICT_OFF,), **engine_kwargs))
    from bank.kit.strict import engine as strict_mode

    connect_timeout = max(1, round(settings.connect_timeout_s))
    deadline = database.current_deadline.get()
    if deadline is not None:  # set up within the caller's time, as a connect would be
        connect_timeout = max(1, min(connect_timeout, math.ceil(deadline - time.monotonic())))
    parsed = make_url(sqlalchemy_url(url))
    connect_args, options = strict_mode.engine_arguments(
        parsed, data_dir=kit.data_dir, pg_config=kit.pg_config, connect_timeout=connect_timeout)
    return finish(url_engine(url, settings, drivername="auroradsql+psycopg", options=options,
                             connect_args=connect_args, **engine_kwargs))


def application_engine(settings: Settings | None = None, **pool_overrides: Any) -> Engine:
    """The engine the application gets on a laptop: the application's own on Aurora DSQL,
    else ``engine()`` on the local server, pooled as the settings say (``pool_overrides``:
    another pool, e.g. a connection per worker of a tool)."""
    settings = settings or get_settings()
    if settings.target is Target.DSQL:
        return database.make_engine(settings, **pool_overrides)
    return engine(settings=settings, **pool_arguments(settings, **pool_overrides))


def use() -> None:
    """From now on the kit builds the application's process-wide engine (see the module doc).
    Its settings are read when it is first needed."""
    database.set_engine_factory(application_engine)


def setup_engine(url: str, **engine_kwargs: Any) -> Engine:
    """A local superuser's engine for set-up and inspection (benchmarks, ``bank chaos``,
    tests), not the application's: plain PostgreSQL, strict mode off for its sessions."""
    parsed = make_url(sqlalchemy_url(url))
    own = parsed.query.get("options")
    options = " ".join(filter(None, [own if isinstance(own, str) else "", STRICT_OFF]))
    return create_engine(parsed.difference_update_query(["options"]),
                         connect_args={"options": options}, **engine_kwargs)
