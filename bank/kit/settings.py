"""The developer kit's settings: where the embedded PostgreSQL lives, and DSQL strict mode.

Read from the environment, apart from the application's (``bank.adapters.settings``):

- ``BANK_DATA_DIR``: where the embedded server keeps its data (default ``.bank/`` in the
  repository);
- ``BANK_DB_PORT``: the embedded server's port (default: the one recorded in the data
  folder, else a free one);
- ``BANK_STRICT``: DSQL strict mode (default: on for the embedded server, off for
  ``DATABASE_URL``);
- ``BANK_PG_CONFIG``: the ``pg_config`` of a ``DATABASE_URL`` server, to build strict
  mode's module for it (default: found where distributions put it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bank.adapters.settings import env_bool, env_port, project_root


@dataclass(frozen=True)
class KitSettings:
    data_dir: Path
    db_port: int | None = None  # None: the port recorded in data_dir, or a free one
    #: DSQL strict mode asked for (None: the default, on for the embedded server only).
    strict: bool | None = None
    pg_config: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KitSettings:
        env = os.environ if env is None else env
        strict = None if not (env.get("BANK_STRICT") or "").strip() else env_bool(
            env, "BANK_STRICT", False)
        return cls(
            data_dir=Path(env.get("BANK_DATA_DIR") or project_root() / ".bank"),
            db_port=env_port(env, "BANK_DB_PORT"),
            strict=strict,
            pg_config=env.get("BANK_PG_CONFIG") or None,
        )


@lru_cache(maxsize=1)
def get_kit_settings() -> KitSettings:
    return KitSettings.from_env()
