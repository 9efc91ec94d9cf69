"""The clients strict mode must behave the same for: psycopg 3 (sync and async), psycopg 2,
asyncpg and psql, each a real connection to a strict-mode server, directly or through the
local DSQL endpoint (:class:`Where`).

A session runs one statement at a time and answers ``(command tag, rows)``, or raises
:class:`ServerError` with the server's SQLSTATE and primary message, whatever the driver.
psycopg 3 and psycopg 2 send a statement without parameters in the simple protocol; asyncpg
prepares every statement (the extended protocol, as its pool and most ORMs use it); psql
sends what it reads, a line at a time, in the simple protocol. ``CLIENTS`` are the four
drivers; the strict-mode tests drive psql through scripts of their own, the endpoint's
tests through :class:`Psql` (``EVERY_CLIENT``).
"""

from __future__ import annotations

import asyncio
import queue
import re
import secrets
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from bank.kit.embedded import pg_bin
from bank.kit.pytest_plugin import LocalDsql
from tests.integration.psql import tls_psql
from tests.integration.strict.server import Target


@dataclass
class ServerError(Exception):
    sqlstate: str
    message: str


class Where:
    """Where a session connects, and as whom: libpq's keywords (psycopg 3 and 2, psql), asyncpg's
    arguments, the psql to run, and the libpq ``options`` every session needs. Each call
    gives fresh ones (a token is minted per connection)."""

    options = ""

    def libpq(self) -> dict[str, Any]:
        raise NotImplementedError

    def asyncpg(self) -> dict[str, Any]:
        raise NotImplementedError

    def psql(self) -> tuple[str, dict[str, str]]:
        """The psql program, and what its environment needs."""
        return pg_bin("psql"), {}


@dataclass
class Direct(Where):
    """Straight to a server (a strict-mode :class:`Target`, or the server behind the
    endpoint), no TLS: what the rewriting endpoint is not in front of."""

    port: int
    dbname: str
    user: str = "postgres"
    password: str | None = None
    options: str = ""

    @classmethod
    def to(cls, target: Target) -> Direct:
        return cls(target.port, target.dbname, options=target.options)

    def libpq(self):
        params = dict(host="127.0.0.1", port=self.port, user=self.user, dbname=self.dbname)
        return {**params, "password": self.password} if self.password else params

    def asyncpg(self):
        return dict(host="127.0.0.1", port=self.port, user=self.user, database=self.dbname,
                    password=self.password)


@dataclass
class ThroughEndpoint(Where):
    """Through the local DSQL endpoint, as a DSQL client connects: TLS ``verify-full``
    against the endpoint's CA for its DSQL name (libpq: ``hostaddr`` 127.0.0.1; asyncpg,
    which has no ``hostaddr``: an SSLContext that names the server), an IAM token as the
    password, DSQL's database ``postgres``."""

    dsql: LocalDsql
    user: str = "admin"

    def libpq(self):
        return self.dsql.conninfo(self.user)

    def asyncpg(self):
        return dict(host="127.0.0.1", port=self.dsql.port, user=self.user, database="postgres",
                    password=self.dsql.token(self.user), ssl=self.dsql.ssl_context())

    def psql(self):
        return tls_psql()


class Session:
    name = ""

    def run(self, sql: str) -> tuple[str, list[tuple[Any, ...]]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Psycopg3(Session):
    name = "psycopg3"

    def __init__(self, where: Where, search_path: str, options: str = ""):
        self.conn = psycopg.connect(**_libpq(where, options), autocommit=True)
        self.conn.execute(f"SET search_path = {search_path}")

    def run(self, sql):
        try:
            cur = self.conn.execute(sql)
        except psycopg.Error as exc:
            raise ServerError(exc.sqlstate or "", exc.diag.message_primary or "") from None
        rows = cur.fetchall() if cur.description else []
        return cur.statusmessage or "", rows

    def close(self):
        self.conn.close()


class _Loop:
    """A private event loop, so that async drivers are driven from a synchronous test."""

    def __init__(self):
        self.runner = asyncio.Runner()

    def __call__(self, coro):
        return self.runner.run(coro)

    def close(self):
        self.runner.close()


class Psycopg3Async(Session):
    name = "psycopg3-async"

    def __init__(self, where: Where, search_path: str, options: str = ""):
        self.loop = _Loop()
        self.conn = self.loop(psycopg.AsyncConnection.connect(**_libpq(where, options),
                                                              autocommit=True))
        self.loop(self.conn.execute(f"SET search_path = {search_path}"))

    def run(self, sql):
        async def go():
            cur = await self.conn.execute(sql)
            rows = await cur.fetchall() if cur.description else []
            return cur.statusmessage or "", rows

        try:
            return self.loop(go())
        except psycopg.Error as exc:
            raise ServerError(exc.sqlstate or "", exc.diag.message_primary or "") from None

    def close(self):
        self.loop(self.conn.close())
        self.loop.close()


class Psycopg2(Session):
    name = "psycopg2"

    def __init__(self, where: Where, search_path: str, options: str = ""):
        import psycopg2

        self.driver = psycopg2
        self.conn = psycopg2.connect(**_libpq(where, options))
        self.conn.autocommit = True  # BEGIN and COMMIT are the test's own statements
        self.run(f"SET search_path = {search_path}")

    def run(self, sql):
        cur = self.conn.cursor()
        try:
            cur.execute(sql)
        except self.driver.Error as exc:
            raise ServerError(exc.pgcode or "", exc.diag.message_primary or "") from None
        rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
        return cur.statusmessage or "", rows

    def close(self):
        self.conn.close()


class Asyncpg(Session):
    name = "asyncpg"

    def __init__(self, where: Where, search_path: str, options: str = ""):
        import asyncpg

        self.driver = asyncpg
        self.loop = _Loop()
        every = _options(where, options)
        self.conn = self.loop(asyncpg.connect(
            **where.asyncpg(),
            server_settings={"search_path": search_path, **({"options": every} if every else {})},
            statement_cache_size=0))

    def run(self, sql):
        async def go():
            statement = await self.conn.prepare(sql)
            rows = await statement.fetch()
            return statement.get_statusmsg() or "", [tuple(r) for r in rows]

        try:
            return self.loop(go())
        except self.driver.PostgresError as exc:
            raise ServerError(exc.sqlstate or "", exc.message or "") from None

    def close(self):
        self.loop(self.conn.close())
        self.loop.close()


class Psql(Session):
    """One psql process, fed a statement at a time on its standard input (it reads line by
    line and runs each statement once its line is complete).

    After each statement psql echoes a marker with its variables ``ERROR`` and ``SQLSTATE``
    (psql 12 and later), then ``LAST_ERROR_MESSAGE``: the error's SQLSTATE and primary
    message, as the drivers report them. Rows are psql's unaligned output (``-At``), text,
    cut at ``|``. psql prints a command tag only for a statement without rows or for a write
    with RETURNING: the tag is that last line, when it names the statement's own command;
    else ``""``."""

    name = "psql"
    ANSWER_S = 60

    def __init__(self, where: Where, search_path: str, options: str = ""):
        program, extra = where.psql()
        params = where.libpq()
        env = {"PATH": "/usr/bin:/bin", **extra}
        if params.get("password"):
            env["PGPASSWORD"] = str(params.pop("password"))
        if every := _options(where, options):
            env["PGOPTIONS"] = every
        self.process = subprocess.Popen(
            [program, "-X", "-At", make_conninfo(**{k: str(v) for k, v in params.items()})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr),  # type: ignore[arg-type]
                         daemon=True).start()
        self.run(f"SET search_path = {search_path}")

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _line(self) -> str:
        try:
            line = self.lines.get(timeout=self.ANSWER_S)
        except queue.Empty:
            raise AssertionError(f"psql gave no answer in {self.ANSWER_S} s") from None
        if line is None:
            self.process.wait(10)
            raise AssertionError(f"psql ended (exit {self.process.returncode}): "
                                 + "".join(self.stderr))
        return line

    def run(self, sql):
        assert self.process.stdin is not None
        marker = f"__bank_{secrets.token_hex(4)}__"
        self.process.stdin.write(f"{sql.rstrip().rstrip(';')};\n"
                                 f"\\echo {marker} :ERROR :SQLSTATE\n\\echo :LAST_ERROR_MESSAGE\n")
        self.process.stdin.flush()
        out = []
        while not (line := self._line()).startswith(marker):
            out.append(line)
        _, failed, sqlstate = line.split()
        message = self._line()
        if failed == "true":
            raise ServerError(sqlstate, message)
        tag = ""
        if out and _TAG.fullmatch(out[-1]) and out[-1].split()[0] == sql.split()[0].upper():
            tag = out.pop()
        return tag, [tuple(row.split("|")) for row in out]

    def close(self):
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_TAG = re.compile(r"[A-Z]+(?: [A-Z]+)*(?: \d+)*")

CLIENTS = [Psycopg3, Psycopg3Async, Psycopg2, Asyncpg]
EVERY_CLIENT = [*CLIENTS, Psql]


def _options(where: Where, options: str) -> str:
    return " ".join(filter(None, [where.options, options]))


def _libpq(where: Where, options: str) -> dict[str, Any]:
    params = where.libpq()
    if every := _options(where, options):
        params["options"] = every
    return params
