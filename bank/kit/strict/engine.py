"""Strict mode for the application's own engines: the DSQL dialect on a local server.

With strict mode on, a local engine talks to PostgreSQL as the application talks to
Aurora DSQL: through the ``auroradsql`` dialect (``CREATE INDEX ASYNC``, DSQL's DDL),
with :class:`~bank.kit.strict.client.StrictCursor` turning ``CREATE INDEX ASYNC``
into a ``sys`` job the server builds, and the server module refusing what DSQL refuses.
So the DSQL branches of ``bank.adapters.ddl``, the migrations and the ch07 lab run on
every local run, not only on a cluster.

- The embedded server preloads the module itself (``bank.kit.embedded``).
- Any other local PostgreSQL (``DATABASE_URL`` with ``BANK_STRICT=1``): the module is built
  for the server's version (its ``pg_config``: ``BANK_PG_CONFIG``, else found where
  distributions put it) and loaded per session (``session_preload_libraries``, which needs
  a superuser); ``sys`` is installed in the database once.
- Strict mode off (``BANK_STRICT=0``): the plain PostgreSQL dialect, and sessions that say
  ``dsql_strict.enabled = off`` (ignored by a server without the module).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from bank.adapters.dberrors import translate
from bank.adapters.errors import DatabaseUnavailable
from bank.kit.errors import StrictModeUnavailable
from bank.kit.strict.build import build_extension, install_sys, session_options
from bank.kit.strict.client import StrictCursor

OFF = "-c dsql_strict.enabled=off"
_prepared: dict[str, Path | None] = {}
_lock = threading.Lock()


def build_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "strict"


def engine_arguments(url: URL, *, data_dir: Path, pg_config: str | None,
                     connect_timeout: int) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(connect arguments, libpq options) of a strict engine on ``url``: the cursors that
    rewrite DSQL's ``CREATE INDEX ASYNC``, and the module, built for that server and loaded
    per session unless the server preloads it (the embedded one)."""
    so = prepare(url, data_dir, pg_config, connect_timeout)
    return {"cursor_factory": StrictCursor}, ((session_options(so),) if so is not None else ())


def prepare(url: URL, data_dir: Path, pg_config: str | None,
            connect_timeout: int = 10) -> Path | None:
    """Build the module for the server at ``url`` and install ``sys`` there (once per
    process); None if the server preloads the module itself (it then has ``sys`` too)."""
    key = url.render_as_string(hide_password=False)
    with _lock:
        if key in _prepared:
            return _prepared[key]
        try:
            libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
            conn = psycopg.connect(libpq, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            named = translate(exc) or DatabaseUnavailable(
                f"cannot connect to set strict mode up ({type(exc).__name__})")
            raise named from None
        with conn:
            if conn.execute("SELECT current_setting('dsql_strict.enabled', true)"
                            ).fetchone() == ("on",):
                _prepared[key] = None  # preloaded by the server (an embedded one)
                return None
            # The URL may name a role to act as (``options=-crole=...``): this set-up acts
            # as the login user, who loads the module into the application's sessions.
            conn.execute("SET ROLE NONE")
            if conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = session_user"
                            ).fetchone() != (True,):
                raise StrictModeUnavailable(
                    "strict mode on a server of your own needs a superuser (it loads a server "
                    "module per session): connect as one, or set BANK_STRICT=0"
                )
            major = conn.info.server_version // 10000
            so = build_extension(pg_config or find_pg_config(major), build_dir(data_dir))
            install_sys(conn)
        _prepared[key] = so
        return so


def find_pg_config(major: int) -> str:
    """The ``pg_config`` of a PostgreSQL ``major``, where distributions install it."""
    candidates = [f"/usr/lib/postgresql/{major}/bin/pg_config", f"/usr/pgsql-{major}/bin/pg_config",
                  f"/opt/homebrew/opt/postgresql@{major}/bin/pg_config",
                  f"/usr/local/opt/postgresql@{major}/bin/pg_config", shutil.which("pg_config")]
    for candidate in filter(None, candidates):
        try:
            version = subprocess.run([candidate, "--version"], capture_output=True, text=True,
                                     check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        if version.split()[-1].split(".")[0] == str(major):
            return candidate
    raise StrictModeUnavailable(
        f"no pg_config for PostgreSQL {major} found: install its server headers (Debian/"
        f"Ubuntu: apt-get install postgresql-server-dev-{major}) or set BANK_PG_CONFIG; "
        "or turn strict mode off with BANK_STRICT=0"
    )
