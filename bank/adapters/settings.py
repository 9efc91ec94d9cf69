"""The application's settings, read once from the environment.

Where the database is, in order:

1. ``DATABASE_URL`` set: that PostgreSQL (any SQLAlchemy/libpq URL).
2. ``CLUSTER_ENDPOINT`` set: Aurora DSQL, IAM auth through ``aurora-dsql-sqlalchemy``.
3. Neither: no database (``Target.NONE``). A deployed function always has one; on a
   laptop the developer kit provides it (``bank.kit.local``: the embedded PostgreSQL,
   DSQL strict mode), before the application asks for its engine.

With ``CLUSTER_ENDPOINT``, ``BANK_DSQL_LOCAL=<folder>`` sends the same DSQL connections to
a local DSQL endpoint instead (``bank endpoint``): the folder holds its CA (``ca.pem``,
trusted instead of the Amazon roots) and its address (``address``: ``127.0.0.1:<port>``),
where libpq connects while it still verifies the certificate for the endpoint's name.
Unset (the default, and always on Lambda): the real cluster.

The kit's own settings (where the embedded server keeps its data, strict mode) are the
kit's (``bank.kit.settings``): a handler's cold start reads only these.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from bank.adapters.errors import ConfigurationError

_REGION_IN_ENDPOINT = re.compile(r"\.dsql[^.]*\.([a-z0-9-]+)\.on\.aws$")


class Target(StrEnum):
    URL = "url"
    DSQL = "dsql"
    NONE = "none"


def region_from_endpoint(endpoint: str) -> str | None:
    match = _REGION_IN_ENDPOINT.search(endpoint)
    return match.group(1) if match else None


_N = TypeVar("_N", int, float)


def _number(env: Mapping[str, str], name: str, default: _N, parse: type[_N], minimum: _N) -> _N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        what = "an integer" if parse is int else "a number"
        raise ConfigurationError(f"{name} must be {what}, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, float, 0.0)


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    return _number(env, name, default, int, minimum)


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise ConfigurationError(f"{name} must be on or off (1/0), got {raw!r}")


def env_port(env: Mapping[str, str], name: str) -> int | None:
    if not env.get(name):
        return None
    port = env_int(env, name, 0, minimum=1)
    if port > 65535:
        raise ConfigurationError(f"{name} must be a TCP port, at most 65535, got {port}")
    return port


def _identifier(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", raw):
        raise ConfigurationError(f"{name} must be a lower-case SQL identifier, got {raw!r}")
    return raw


def project_root() -> Path:
    """The repository root (in a Lambda artifact, the folder holding ``bank/`` and, for the
    migration function, ``alembic/``)."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    target: Target
    database_url: str | None = None
    cluster_endpoint: str | None = None
    region: str | None = None
    db_user: str = "admin"
    # Connection pool (sized for Lambda: one request at a time per container).
    pool_size: int = 2
    max_overflow: int = 2
    pool_recycle_s: int = 3300  # DSQL closes connections after 60 minutes
    # Optimistic-concurrency retry (ch05/ch06).
    occ_max_attempts: int = 10
    occ_base_delay_s: float = 0.005
    occ_max_delay_s: float = 0.5
    # Time limits; a Lambda's remaining time bounds them further (bank.adapters.deadline).
    connect_timeout_s: float = 5.0
    statement_timeout_s: float = 30.0  # local PostgreSQL only: DSQL bounds its own
    # local PostgreSQL only: DSQL never waits for a lock; in strict mode no row lock is
    # waited for either (conflicts fail at COMMIT), so it bounds only what still waits: a
    # duplicate key another open transaction inserted, DDL against a table in use.
    lock_timeout_s: float = 2.0
    # A schema of its own (search_path), e.g. one per test run; None: the server's default.
    schema: str | None = None
    # A local DSQL endpoint (BANK_DSQL_LOCAL): the folder of its ca.pem and address.
    dsql_local: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        database_url = env.get("DATABASE_URL") or None
        endpoint = env.get("CLUSTER_ENDPOINT") or None
        region = env.get("AWS_REGION") or env.get("REGION") or None
        if database_url:
            target = Target.URL
        elif endpoint:
            target = Target.DSQL
            region = region or region_from_endpoint(endpoint)
            if not region:
                raise ConfigurationError(
                    f"CLUSTER_ENDPOINT {endpoint!r} names no region: set AWS_REGION or REGION"
                )
        else:
            target = Target.NONE
        settings = cls(
            target=target,
            database_url=database_url,
            cluster_endpoint=endpoint,
            region=region,
            db_user=env.get("DB_USER") or "admin",
            pool_size=env_int(env, "BANK_POOL_SIZE", cls.pool_size, minimum=1),
            max_overflow=env_int(env, "BANK_POOL_MAX_OVERFLOW", cls.max_overflow),
            pool_recycle_s=env_int(env, "BANK_POOL_RECYCLE_S", cls.pool_recycle_s, minimum=1),
            occ_max_attempts=env_int(env, "BANK_OCC_MAX_ATTEMPTS", cls.occ_max_attempts, minimum=1),
            occ_base_delay_s=env_float(env, "BANK_OCC_BASE_DELAY_S", cls.occ_base_delay_s),
            occ_max_delay_s=env_float(env, "BANK_OCC_MAX_DELAY_S", cls.occ_max_delay_s),
            connect_timeout_s=env_float(env, "BANK_CONNECT_TIMEOUT_S", cls.connect_timeout_s),
            statement_timeout_s=env_float(env, "BANK_STATEMENT_TIMEOUT_S", cls.statement_timeout_s),
            lock_timeout_s=env_float(env, "BANK_LOCK_TIMEOUT_S", cls.lock_timeout_s),
            schema=_identifier(env, "BANK_SCHEMA"),
            dsql_local=Path(env["BANK_DSQL_LOCAL"]) if env.get("BANK_DSQL_LOCAL") else None,
        )
        if settings.occ_max_delay_s < settings.occ_base_delay_s:
            raise ConfigurationError("BANK_OCC_MAX_DELAY_S must be >= BANK_OCC_BASE_DELAY_S")
        return settings

    @property
    def is_dsql(self) -> bool:
        return self.target is Target.DSQL


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings.from_env()
