"""The unit of work over a SQLAlchemy ``Session``: one transaction, committed or rolled back.

    with SqlAlchemyUnitOfWork() as uow:
        balance = uow.accounts(Account).move(1, 2, Decimal("10"))
        uow.transfers.add(Transfer.record(request, balance))
        uow.commit()          # nothing is kept unless commit() is called

The sessions come from one module-level ``sessionmaker``, bound to the process-wide engine,
so a warm Lambda container reuses its pooled connection (ch04). The unit of work checks
that connection out on entry and opens its ``Session`` on it at first use: a transfer
whose statements are all set-based (below) never needs one, and skips its cost (a fifth
of the transfer's client CPU, measured by ``benchmarks/transfer.py``).

Round trips. On Aurora DSQL every statement is a network round trip and COMMIT costs
more, so the unit of work spends as few as it can: its connection runs in psycopg's
autocommit mode (``bank.adapters.database``) and it drives the transaction itself.

- BEGIN travels in one pipeline with the first statement (``bank.adapters.database``);
- ``commit()`` sends the pending writes (the ledger entry, and anything the ORM session
  holds) and COMMIT in one pipeline.

A transfer is therefore two round trips, where SQLAlchemy's defaults take four
(BEGIN, UPDATE, INSERT, COMMIT).

Client CPU. The repositories' hot statements (the move, the ledger entry) go through
``run``: compiled once, executed on the driver's cursor, without SQLAlchemy's
per-execution context and result objects; reads (``session.get``) take the ORM's path.

Errors are named (``bank.adapters.dberrors``). A connection lost during COMMIT raises
``CommitOutcomeUnknown``: the service settles it by looking the work up.
``deadline`` (``time.monotonic()``) bounds every wait on the connection
(``bank.adapters.deadline``): a Lambda's remaining time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from functools import cache
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy import Connection, Dialect, Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ClauseElement

from bank.adapters import orm  # noqa: F401  (maps the domain classes)
from bank.adapters.database import UNIT_OF_WORK, begin_with, current_deadline, get_engine
from bank.adapters.dberrors import is_connection_failure, translate
from bank.adapters.deadline import guard
from bank.adapters.repositories import SqlAlchemyAccounts, SqlAlchemyLedger
from bank.domain.errors import BankError, DatabaseUnavailable
from bank.domain.model import AccountKind

IDLE = pq.TransactionStatus.IDLE

# psycopg logs a warning when a pipeline that already raised (a COMMIT refused: a
# conflict, a replayed transfer_id) fails again on exit; the first error is the one
# raised to the caller, named.
logging.getLogger("psycopg").addFilter(
    lambda record: not record.getMessage().startswith("error ignored terminating")
)

_factory: tuple[Engine, sessionmaker[Session]] | None = None


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    """The module-level ``sessionmaker`` of the process-wide engine (built once per engine)."""
    global _factory
    engine = engine or get_engine()
    cached = _factory
    if cached is None or cached[0] is not engine:
        bound = engine.execution_options(**{UNIT_OF_WORK: True})
        cached = _factory = (engine, sessionmaker(bind=bound, expire_on_commit=False,
                                                  autoflush=False))
    return cached[1]


@cache
def _compiled(statement: ClauseElement, dialect: Dialect) -> str:
    return str(statement.compile(dialect=dialect))


class SqlAlchemyUnitOfWork:
    def __init__(self, deadline: float | None = None,
                 sessions: sessionmaker[Session] | None = None):
        self._deadline = deadline
        self._sessions = sessions

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        token = current_deadline.set(self._deadline)
        try:  # within the deadline: a first use builds the engine, which may connect
            sessions = self._sessions = self._sessions or session_factory()
            self._connection: Connection = sessions.kw["bind"].connect()
        finally:
            current_deadline.reset(token)
        self._session: Session | None = None
        try:
            driver = self._connection.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            self._driver = driver
            self._cursor = driver.cursor()
            self._guard = guard(driver, self._deadline)
            self._guard.__enter__()
        except BaseException:
            self._connection.close()
            raise
        self.transfers = SqlAlchemyLedger(self)
        self._repositories: dict[Any, SqlAlchemyAccounts] = {}
        return self

    def accounts(self, kind: AccountKind) -> SqlAlchemyAccounts:
        repository = self._repositories.get(kind)
        if repository is None:
            repository = self._repositories[kind] = SqlAlchemyAccounts(self, kind)
        return repository

    @property
    def session(self) -> Session:
        """The ORM ``Session`` of this unit of work, on its connection (opened at first use)."""
        self._check_alive()
        session = self._session
        if session is None:
            assert self._sessions is not None
            session = self._session = self._sessions(bind=self._connection)
        return session

    def _check_alive(self) -> None:
        """After a lost connection, the work is over: nothing reconnects in its middle."""
        if self._connection.invalidated:
            raise DatabaseUnavailable("the database connection was lost; nothing was committed")

    def _flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def run(self, statement: ClauseElement, parameters: Mapping[str, Any]) -> psycopg.Cursor:
        """Run a repository's hot ``statement`` on this unit of work's connection.

        The statement is compiled once to SQL text and handed to the driver, which skips
        SQLAlchemy's per-execution work (about a third of a transfer's client CPU); its
        parameters are plain ints, UUIDs, Decimals and datetimes psycopg sends as they
        are. BEGIN travels with the first statement; errors are named. Returns the
        driver's cursor, holding the statement's rows."""
        sql = _compiled(statement, self._connection.dialect)
        cursor = self._cursor
        try:
            if self._driver.info.transaction_status == IDLE:
                begin_with(cursor, sql, parameters)
            else:
                cursor.execute(sql, parameters)
        except psycopg.Error as exc:
            raise self._named(exc) from exc
        return cursor

    def _named(self, exc: psycopg.Error, during_commit: bool = False) -> BankError:
        if is_connection_failure(exc) and not self._connection.invalidated:
            # What SQLAlchemy does on a disconnect in its own statements: this connection
            # is dropped, and every pooled one as old is replaced at its next checkout
            # (after a server restart they are all dead; none should cost an attempt).
            self._connection.engine.pool._invalidate(self._connection.connection, exc)
            self._connection.invalidate(exc)
        named = translate(exc, during_commit=during_commit)
        assert named is not None
        return named

    def commit(self) -> None:
        self._check_alive()
        driver = self._driver
        if driver.info.transaction_status == IDLE:
            self.transfers.write_pending()  # only writes: BEGIN travels with the first
            self._flush()
        if driver.info.transaction_status != IDLE:
            try:
                with driver.pipeline():
                    self.transfers.write_pending()
                    self._flush()
                    self._cursor.execute(b"COMMIT")
            except psycopg.Error as exc:
                raise self._named(exc, during_commit=True) from exc
        # The database has committed. The session is not told (its commit() would only do
        # bookkeeping in autocommit mode): it is closed on exit, and a statement after
        # commit() starts a new transaction.

    def rollback(self) -> None:
        driver = self._driver
        if driver.closed or driver.info.transaction_status == IDLE:
            return
        # Straight to libpq (``Connection.pgconn``, psycopg's door for low-level commands):
        # psycopg's own rollback() also forgets every prepared statement, in case the
        # transaction changed the schema, which costs a round trip (DEALLOCATE ALL) and
        # preparing them all again. A unit of work changes no schema.
        result = driver.pgconn.exec_(b"ROLLBACK")
        if result.status != pq.ExecStatus.COMMAND_OK:
            self._connection.invalidate()
            raise DatabaseUnavailable(
                "the database connection failed during ROLLBACK; nothing was committed")

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            with contextlib.suppress(BankError):  # the error in flight, if any, matters more
                self.rollback()  # a no-op after commit(): the transaction is over
        finally:
            self._guard.__exit__(None, None, None)
            try:
                if self._session is not None:
                    self._session.close()
            finally:
                self._connection.close()  # back to the pool
