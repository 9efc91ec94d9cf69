"""The unit of work: one SQLAlchemy ``Session`` in one transaction, committed or rolled back.

    with SqlAlchemyUnitOfWork() as uow:
        balance = uow.accounts(Account).move(1, 2, Decimal("10"))
        uow.transfers.add(Transfer.record(request, balance))
        uow.commit()          # nothing is kept unless commit() is called

Each unit of work is a ``Session`` from the module-level ``sessionmaker`` (``Sessions``),
bound to the process-wide engine, in ``Session.begin()``: a warm Lambda container reuses
its pooled connection (ch04). The repositories work through that session
(``session.execute``, ``session.get``, ``session.add``); ``commit()`` is the session's, and
leaving the block without it rolls back. Nothing here talks to the driver: round trips are
saved by the engine (``bank.adapters.pipelining``), for this code and any other.

The connection is checked out on entry, within ``deadline`` (``time.monotonic()``, a
Lambda's remaining time): a first use builds the engine and connects. That deadline also
bounds every wait on the connection (``bank.adapters.deadline``). Errors are named by the
engine (``bank.adapters.dberrors``): a connection lost during COMMIT is a
``CommitOutcomeUnknown``, which the service settles by looking the work up.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from bank.adapters import orm  # noqa: F401  (maps the domain classes)
from bank.adapters.database import current_deadline, get_engine
from bank.adapters.deadline import guard
from bank.adapters.repositories import SqlAlchemyAccounts, SqlAlchemyLedger
from bank.domain.errors import BankError
from bank.domain.model import AccountKind

#: The application's sessions. Bound per unit of work to the process-wide engine, which is
#: built on first use from the environment. ``expire_on_commit=False``: what a unit of work
#: loaded stays readable after its commit (a handler shapes its answer from it).
Sessions = sessionmaker(expire_on_commit=False)


class SqlAlchemyUnitOfWork:
    """``engine``: another engine than the process-wide one (a tool with a pool of its own)."""

    def __init__(self, deadline: float | None = None, engine: Engine | None = None):
        self._deadline = deadline
        self._engine = engine

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        token = current_deadline.set(self._deadline)
        try:  # within the deadline: a first use builds the engine, which may connect
            self.session = Sessions(bind=self._engine or get_engine())
            try:
                self.session.begin()
                driver = self.session.connection().connection.driver_connection
                assert isinstance(driver, psycopg.Connection)
            except BaseException:
                self.session.close()
                raise
        finally:
            current_deadline.reset(token)
        self._guard = guard(driver, self._deadline)
        self._guard.__enter__()
        self.transfers = SqlAlchemyLedger(self.session)
        self._accounts: dict[Any, SqlAlchemyAccounts] = {}
        return self

    def accounts(self, kind: AccountKind) -> SqlAlchemyAccounts:
        repository = self._accounts.get(kind)
        if repository is None:
            repository = self._accounts[kind] = SqlAlchemyAccounts(self.session, kind)
        return repository

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            # Rolls back unless commit() was called. If that fails, the database did not
            # commit either: the error in flight, or the work's own result, matters more.
            with contextlib.suppress(BankError):
                self.session.close()
        finally:
            self._guard.__exit__(None, None, None)
