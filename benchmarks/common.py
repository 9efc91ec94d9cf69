"""What the benchmarks share: a scratch schema, pgbench, and a link with latency.

- ``scratch_schema(server)``: a schema of its own on the server, migrated to head by
  Alembic (the application's real tables and ledger), dropped at the end;
- ``pgbench(...)``: the C client shipped with the embedded PostgreSQL, in that schema,
  in DSQL strict mode or not;
- ``STRICT_MODES``: ``--strict both`` measures everything with strict mode on and off, in
  the same run, to show what strict mode costs;
- ``Link(server, rtt_ms)``: a delay proxy (``netproxy.py``) in a process of its own, so
  its CPU does not compete with the client's; both the baseline and bank go through it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bank.kit.embedded import pg_bin
from bank.kit.local import setup_engine

ROOT = Path(__file__).resolve().parent.parent
STRICT_MODES = {"on": [True], "off": [False], "both": [True, False]}
#: ``--commits``: durable commits (the server's setting) or ``synchronous_commit = off`` for
#: both sides' sessions, to show what durability costs.
COMMIT_MODES = {"durable": [True], "fast": [False], "both": [True, False]}
FAST_COMMITS = "-c synchronous_commit=off"


def with_schema(url: str, schema: str) -> str:
    return make_url(url).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    ).render_as_string(hide_password=False)


@contextlib.contextmanager
def scratch_schema(server: str) -> Iterator[str]:
    """A fresh schema migrated to head; yields its name."""
    schema = f"bench_{secrets.token_hex(4)}"
    admin = setup_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.set_main_option("script_location", str(ROOT / "alembic"))
        cfg.set_main_option("sqlalchemy.url", with_schema(server, schema).replace("%", "%%"))
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, "head")
        yield schema
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def pgbench(url: str, schema: str, script: str, *args: str, strict: bool = False,
            durable: bool = True) -> str:
    """Run pgbench with ``script`` in ``schema`` at REPEATABLE READ, in DSQL strict mode or
    not (a server without the module ignores the setting), with durable commits or not;
    its output."""
    u = make_url(url)
    env = {**os.environ, "PGOPTIONS": f"-c search_path={schema} "
           "-c default_transaction_isolation=repeatable\\ read "
           f"-c dsql_strict.enabled={'on' if strict else 'off'}"
           f"{'' if durable else ' ' + FAST_COMMITS}"}
    if u.password:
        env["PGPASSWORD"] = u.password
    for param, variable in (("passfile", "PGPASSFILE"), ("require_auth", "PGREQUIREAUTH")):
        value = u.query.get(param)  # the embedded server's URL: the password is in a file
        if isinstance(value, str):
            env[variable] = value
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as fh:
        fh.write(script)
        fh.flush()
        os.chmod(fh.name, 0o644)
        return subprocess.run(
            [pg_bin("pgbench"), "-n", *args, "-f", fh.name, "-h", u.host or "127.0.0.1",
             "-p", str(u.port or 5432), "-U", u.username or "postgres", u.database or ""],
            capture_output=True, text=True, env=env, check=True,
        ).stdout


def tps(output: str) -> float:
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
    assert match, output
    return float(match.group(1))


class Link:
    """A TCP link with ``rtt_ms`` of round-trip time between client and server; 0: direct."""

    def __init__(self, server: str, rtt_ms: float):
        self.server, self.rtt_ms = make_url(server), rtt_ms
        self.process: subprocess.Popen | None = None
        self.url = server
        self.report = ""  # after the link closes: how late the proxy passed chunks on

    def __enter__(self) -> Link:
        if self.rtt_ms > 0:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "benchmarks" / "netproxy.py"),
                 f"{self.server.host}:{self.server.port}", "--rtt-ms", str(self.rtt_ms)],
                stdout=subprocess.PIPE, text=True,
            )
            assert self.process.stdout is not None
            port = int(self.process.stdout.readline())
            self.url = self.server.set(port=port).render_as_string(hide_password=False)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            out, _ = self.process.communicate(timeout=10)
            self.report = out.strip().splitlines()[-1] if out.strip() else ""
