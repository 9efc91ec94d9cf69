"""Build and install strict mode for a given PostgreSQL server.

- :func:`build_extension` compiles ``dsql_strict.c`` into a shared library for the server
  that a ``pg_config`` describes; the result is cached by source hash and server version.
- :func:`server_settings` gives the ``postgresql.conf`` settings that preload it (a server
  we start ourselves, like the embedded one).
- :func:`session_options` gives the libpq ``options`` that load it for one session instead
  (a server we do not configure, like a distribution's PostgreSQL; superuser only).
- :func:`install_sys` runs ``sys.sql`` (DSQL's ``sys`` schema) in a database.

The server's OS user (``embedded_postgres`` or ``postgres`` when we are root) must be able
to read the library: it is written world-readable, and the folders above it are made
traversable (o+x) where we own them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bank.kit.errors import StrictModeUnavailable

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "dsql_strict.c"
SYS_SQL = HERE / "sys.sql"
ROW_LIMIT = 3000



def _pg_config(pg_config: str, *args: str) -> str:
    try:
        out = subprocess.run([pg_config, *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise StrictModeUnavailable(f"cannot run {pg_config} {' '.join(args)}: {exc}") from None
    return out.stdout.strip()


def _compiler() -> list[str]:
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    if importlib.util.find_spec("ziglang") is not None:
        return [sys.executable, "-m", "ziglang", "cc"]
    raise StrictModeUnavailable(
        "no C compiler: install one (Debian/Ubuntu: apt-get install gcc; macOS: "
        "xcode-select --install) or pip install ziglang"
    )


def _make_reachable(path: Path, parents: bool = True) -> None:
    """Let another OS user (the server's) read ``path`` and traverse the folders above it."""
    for own in (path, path.parent):
        if own.stat().st_mode & 0o755 != 0o755:
            own.chmod(0o755)
    for parent in path.parents if parents else ():
        try:
            mode = parent.stat().st_mode
            if mode & 0o001 == 0:
                parent.chmod(mode | 0o001)
        except PermissionError:  # not ours: assume it is traversable
            pass


def _check_private(folder: Path) -> None:
    """Refuse a folder where another user could plant the library the server will load."""
    status = folder.stat()
    if status.st_uid not in (os.getuid(), 0) or status.st_mode & 0o022:
        raise StrictModeUnavailable(
            f"{folder} can be written by another OS user, who could put a library of their "
            "own there for the server to load: remove it, or build somewhere else"
        )


def build_extension(pg_config: str, out_dir: Path, reachable: bool = True) -> Path:
    """Compile strict mode for the server ``pg_config`` describes; return the library's path.

    Rebuilt only when the source or the server version changes (both are in the file name).
    ``reachable``: make the folders above it traversable by other OS users (not needed in
    a folder the server's OS user owns, like the embedded server's data folder).
    """
    version = _pg_config(pg_config, "--version")  # "PostgreSQL 18.6"
    include = Path(_pg_config(pg_config, "--includedir-server"))
    if not (include / "postgres.h").is_file():
        major = version.split()[-1].split(".")[0]
        raise StrictModeUnavailable(
            f"the server headers of {version} are not installed (no {include}/postgres.h): "
            f"on Debian/Ubuntu apt-get install postgresql-server-dev-{major}"
        )
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + version.encode()).hexdigest()[:16]
    major = version.split()[-1].split(".")[0]
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_private(out_dir)
    target = out_dir / f"dsql_strict-pg{major}-{digest}.so"
    if target.is_file():
        _make_reachable(target, reachable)
        return target
    link = ["-bundle", "-undefined", "dynamic_lookup"] if sys.platform == "darwin" else ["-shared"]
    partial = target.with_name(target.name + f".{os.getpid()}.tmp")
    cmd = [*_compiler(), "-O2", "-fPIC", "-fno-strict-aliasing", "-fwrapv", "-Wall",
           f"-I{include}", *link, "-o", str(partial), str(SOURCE)]
    made = subprocess.run(cmd, capture_output=True, text=True)
    if made.returncode != 0:
        partial.unlink(missing_ok=True)
        raise StrictModeUnavailable(
            f"compiling {SOURCE.name} for {version} failed:\n{' '.join(cmd)}\n{made.stderr}"
        )
    os.replace(partial, target)  # atomic: a concurrent build never sees half a library
    _make_reachable(target, reachable)
    return target


def server_settings(so_path: Path, row_limit: int = ROW_LIMIT) -> dict[str, str]:
    """postgresql.conf settings that preload strict mode (write them as ``key = 'value'``)."""
    return {
        "shared_preload_libraries": str(Path(so_path).resolve()),
        "dsql_strict.enabled": "on",
        "dsql_strict.row_limit": str(row_limit),
    }


def conf_lines(settings: dict[str, str]) -> str:
    """The ``settings`` as postgresql.conf lines."""
    return "".join(f"{key} = '{value}'\n" for key, value in settings.items())


def session_options(so_path: Path) -> str:
    """libpq ``options`` loading strict mode for one session (the user must be a superuser).

    E.g. ``psycopg.connect(url, options=session_options(so))`` or
    ``PGOPTIONS="$(...)" psql``; a superuser can also make it the default for every
    session of a database: ``ALTER DATABASE d SET session_preload_libraries = '<so>'``.
    """
    path = str(Path(so_path).resolve()).replace("\\", "\\\\").replace(" ", "\\ ")
    return f"-c session_preload_libraries={path}"


def install_sys(conn: Any) -> None:
    """Create or upgrade DSQL's ``sys`` schema in ``conn``'s database (as a superuser).

    ``conn`` is a psycopg 3 connection. Idle, the script runs in a transaction of its own;
    inside a transaction, it joins it (the caller commits).
    """
    import psycopg

    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.execute(SYS_SQL.read_text())
        return
    with conn.transaction():
        conn.execute(SYS_SQL.read_text())
