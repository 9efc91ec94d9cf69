"""The clients strict mode must behave the same for: psycopg 3 (sync and async), psycopg 2 and
asyncpg, each a real connection to a strict-mode server (psql, which has no session object,
is driven through scripts by the tests themselves).

A session runs one statement at a time and answers ``(command tag, rows)``, or raises
:class:`ServerError` with the server's SQLSTATE and primary message, whatever the driver.
psycopg 3 and psycopg 2 send a statement without parameters in the simple protocol; asyncpg
prepares every statement (the extended protocol, as its pool and most ORMs use it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.integration.strict.server import Target


@dataclass
class ServerError(Exception):
    sqlstate: str
    message: str


class Session:
    name = ""

    def run(self, sql: str) -> tuple[str, list[tuple[Any, ...]]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Psycopg3(Session):
    name = "psycopg3"

    def __init__(self, target: Target, search_path: str, options: str = ""):
        self.conn = psycopg.connect(_dsn(target, options), autocommit=True)
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

    def __init__(self, target: Target, search_path: str, options: str = ""):
        self.loop = _Loop()
        self.conn = self.loop(psycopg.AsyncConnection.connect(_dsn(target, options),
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

    def __init__(self, target: Target, search_path: str, options: str = ""):
        import psycopg2

        self.driver = psycopg2
        self.conn = psycopg2.connect(_dsn(target, options))
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

    def __init__(self, target: Target, search_path: str, options: str = ""):
        import asyncpg

        self.driver = asyncpg
        self.loop = _Loop()
        every = " ".join(filter(None, [target.options, options]))
        self.conn = self.loop(asyncpg.connect(
            host="127.0.0.1", port=target.port, user="postgres", database=target.dbname,
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


CLIENTS = [Psycopg3, Psycopg3Async, Psycopg2, Asyncpg]


def _dsn(target: Target, options: str) -> str:
    every = " ".join(filter(None, [target.options, options]))
    dsn = f"host=127.0.0.1 port={target.port} user=postgres dbname={target.dbname}"
    quoted = every.replace("\\", "\\\\").replace("'", "\\'")  # libpq's quoting
    return dsn + (f" options='{quoted}'" if every else "")
