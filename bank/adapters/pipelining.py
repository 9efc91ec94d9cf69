"""Fewer round trips for ordinary SQLAlchemy transactions: BEGIN with the first statement,
the pending writes with COMMIT.

On Aurora DSQL every statement is a network round trip. psycopg, left to itself, sends
BEGIN on its own before a transaction's first statement, each statement on its own, and
COMMIT on its own: a transfer (BEGIN, UPDATE, INSERT, COMMIT) waits for four replies.
``pipeline_transactions(engine)`` makes it two, for every transaction on ``engine``:
``engine.begin()``, ``Session.begin()``, ``with engine.connect() as c: ...; c.commit()``,
whatever code opens it, through psycopg's public pipeline API:

1. **BEGIN travels with the first statement.** When SQLAlchemy begins a transaction, the
   driver connection is in psycopg's autocommit mode, so psycopg sends no BEGIN of its own;
   the first statement goes out in one pipeline after ``BEGIN``: one round trip.
2. **Writes that return nothing wait for the next statement that needs an answer.** An
   INSERT without RETURNING (the ORM's flush of a new object, a Core ``insert()`` with
   values) is queued in a psycopg pipeline instead of being waited for. Whatever needs a
   result next (a SELECT, an UPDATE whose row count the ORM checks, COMMIT) goes out with
   the queued writes, in the same round trip.
3. **COMMIT travels with the pending writes.** SQLAlchemy's commit (``Session.commit()``,
   ``Connection.commit()``, the end of ``engine.begin()``) runs the statement ``COMMIT``
   through SQLAlchemy's own execution (``Connection.exec_driver_sql``), in the pipeline that
   holds the queued writes. Its errors are handled like any statement's: the engine's
   ``handle_error`` hook names them, and a lost connection invalidates the pool. SQLAlchemy
   then calls psycopg's ``commit()``, which finds the transaction over and sends nothing.

ROLLBACK is psycopg's own ``rollback()``, with its bookkeeping (it forgets the connection's
prepared statements, in case the transaction changed the schema). A transfer that moves
money is therefore: ``BEGIN`` + the move (one round trip), the ledger INSERT + ``COMMIT``
(one round trip).

What is not changed:

- a connection given an isolation level of its own (``execution_options(isolation_level=
  "AUTOCOMMIT")``, which DDL and migrations use, or any other level) is left to SQLAlchemy
  and psycopg: every statement is then sent and waited for as usual;
- a write with RETURNING, an UPDATE or a DELETE is sent at once: its caller reads its result.
  Only an INSERT's answer is deferred, so a failing INSERT (a duplicate key) raises from the
  statement that follows it, or from COMMIT, not from its own ``execute()``.
- the statements themselves, their parameters, prepared statements (``BEGIN`` and
  ``COMMIT`` are never prepared), and psycopg's transaction status, which libpq reports
  from the server after every round trip.

Use it in your own application: create the engine, call ``pipeline_transactions(engine)``
once, and write ordinary SQLAlchemy code. It needs the ``psycopg`` driver (the
``postgresql+psycopg`` and ``auroradsql+psycopg`` dialects).
``tests/integration/test_pipelining.py`` tests it at this boundary: atomicity, round trips
counted by a proxy, errors, rollbacks.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine, event

BEGIN = b"BEGIN"
COMMIT = "COMMIT"
IDLE = TransactionStatus.IDLE
#: Execution option of the COMMIT statement this piece runs (see ``handle_error`` users:
#: ``bank.adapters.database`` tells a failed COMMIT from a failed statement by it).
COMMIT_OPTION = "bank_pipelined_commit"

# psycopg warns when a pipeline that already raised fails again as it is closed (the rest
# of an aborted pipeline): the first error is the one raised to the caller.
logging.getLogger("psycopg").addFilter(
    lambda record: not record.getMessage().startswith("error ignored terminating")
)


@dataclass(eq=False)
class _Transaction:
    """This piece's state for one transaction on one driver connection."""

    begin_pending: bool = True  # BEGIN not sent yet: it goes with the first statement
    #: An open psycopg pipeline (``Connection.pipeline()``, entered), holding writes whose
    #: answer nobody waits for; closing it sends them and waits (a Sync).
    pipeline: contextlib.ExitStack | None = None


#: The transactions this piece runs, by driver connection (one thread uses one at a time).
_running: weakref.WeakKeyDictionary[psycopg.Connection, _Transaction] = (
    weakref.WeakKeyDictionary()
)


def pipeline_transactions(engine: Engine) -> Engine:
    """Install the piece on ``engine`` (once); returns ``engine``."""
    if event.contains(engine, "begin", _on_begin):
        return engine
    event.listen(engine, "begin", _on_begin)
    event.listen(engine, "commit", _on_commit)
    event.listen(engine, "rollback", _on_rollback)
    event.listen(engine, "do_execute", _do_execute)
    event.listen(engine, "do_execute_no_params", _do_execute_no_params)
    event.listen(engine, "do_executemany", _do_executemany)
    return engine


def _driver(connection: Connection) -> psycopg.Connection:
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection), "pipeline_transactions needs psycopg"
    return driver


def _on_begin(connection: Connection) -> None:
    """SQLAlchemy begins a transaction: BEGIN is this piece's, sent with the first statement."""
    if "isolation_level" in connection.get_execution_options():
        return  # the caller chose how this connection runs: SQLAlchemy and psycopg do it
    driver = _driver(connection)
    if not driver.autocommit:
        driver.autocommit = True  # psycopg sends no BEGIN of its own (the connection is idle)
    _running[driver] = _Transaction()


def _on_commit(connection: Connection) -> None:
    transaction = _running.get(_driver(connection))
    if transaction is None:
        return
    if transaction.begin_pending:  # nothing was sent: nothing to commit
        del _running[_driver(connection)]
        return
    # Through SQLAlchemy's execution, so that its errors are handled as any statement's.
    connection.exec_driver_sql(COMMIT, execution_options={COMMIT_OPTION: True})


def _on_rollback(connection: Connection) -> None:
    """Before psycopg's rollback(): the queued writes are sent and their answers dropped."""
    if connection.invalidated:
        return  # its driver connection is gone, and this piece's state with it
    transaction = _running.pop(_driver(connection), None)
    if transaction is not None and transaction.pipeline is not None:
        with contextlib.suppress(psycopg.Error):  # rolled back next, whatever they did
            transaction.pipeline.close()


def _deferrable(context: Any) -> bool:
    """An INSERT without RETURNING: nobody reads its answer."""
    compiled = context.compiled
    return bool(context.isinsert and compiled is not None and not compiled.effective_returning)


def _run(cursor: psycopg.Cursor, context: Any, execute: Any) -> bool | None:
    """Run ``execute(cursor)`` as this piece does, or return None to let SQLAlchemy run it."""
    transaction = _running.get(cursor.connection)
    if transaction is None:
        return None
    if (transaction.pipeline is None and not transaction.begin_pending
            and cursor.connection.info.transaction_status == IDLE):
        # The transaction was ended underneath (the DSQL dialect commits after each DDL
        # statement): the next statement begins another, as psycopg's own would.
        transaction.begin_pending = True
    committing = bool(context.execution_options.get(COMMIT_OPTION))
    defer = not committing and _deferrable(context)
    if committing and transaction.pipeline is None:
        return _commit(cursor, transaction)
    if not (transaction.begin_pending or transaction.pipeline is not None or defer):
        return None  # in the middle of a transaction: an ordinary statement
    pipeline, transaction.pipeline = transaction.pipeline, None
    if pipeline is None:
        pipeline = contextlib.ExitStack()
        pipeline.enter_context(cursor.connection.pipeline())
    try:
        with pipeline:  # its end sends what was queued, and waits: one round trip
            if transaction.begin_pending:
                transaction.begin_pending = False
                cursor.execute(BEGIN, prepare=False)
            execute(cursor)
            if defer:  # kept open: sent with whatever needs an answer next
                transaction.pipeline = pipeline.pop_all()
    except BaseException:
        if committing:
            _end_failed_commit(cursor.connection)
        raise
    finally:
        if committing:
            _running.pop(cursor.connection, None)
    return True


def _commit(cursor: psycopg.Cursor, transaction: _Transaction) -> bool:
    """COMMIT alone (nothing queued): no pipeline needed for one statement."""
    try:
        if not transaction.begin_pending:
            cursor.execute(COMMIT, prepare=False)
    except BaseException:
        _end_failed_commit(cursor.connection)
        raise
    finally:
        _running.pop(cursor.connection, None)
    return True


def _end_failed_commit(driver: psycopg.Connection) -> None:
    """A COMMIT that fails leaves no transaction behind. When a queued write failed, the
    server skipped the COMMIT after it and the transaction is still open (aborted):
    psycopg rolls it back, with its own bookkeeping."""
    if driver.closed or driver.info.transaction_status == IDLE:
        return
    try:
        driver.rollback()
    except psycopg.Error:
        pass  # a lost connection: the error in flight says so, SQLAlchemy drops it


# The statements themselves are run by the dialect (``Dialect.do_execute`` and kin), as
# SQLAlchemy would: the DSQL dialect, for one, commits after each DDL statement. COMMIT is
# the piece's own, and never prepared.

def _do_execute(cursor, statement, parameters, context) -> bool | None:
    if context.execution_options.get(COMMIT_OPTION):
        return _run(cursor, context, lambda c: c.execute(COMMIT, prepare=False))
    return _run(cursor, context,
                lambda c: context.dialect.do_execute(c, statement, parameters, context))


def _do_execute_no_params(cursor, statement, context) -> bool | None:
    if context.execution_options.get(COMMIT_OPTION):
        return _run(cursor, context, lambda c: c.execute(COMMIT, prepare=False))
    return _run(cursor, context,
                lambda c: context.dialect.do_execute_no_params(c, statement, context))


def _do_executemany(cursor, statement, parameters, context) -> bool | None:
    return _run(cursor, context,
                lambda c: context.dialect.do_executemany(c, statement, parameters, context))
