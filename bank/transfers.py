"""Balance lookup (ch03) and money transfer (ch04-ch06).

The transfer is ONE statement that moves the money between both rows, as
CockroachDB's bank workload does: it updates both accounts only if both exist and
the payer can afford it, and returns the new balances. Run on its own, that
statement is the whole transaction (autocommit): one round trip, and the smallest
possible conflict window, where the tutorial's BEGIN / UPDATE / UPDATE / COMMIT
takes four. Locally the session runs at REPEATABLE READ (bank.database), so a
concurrent change to either row is a serialization failure (40001), as on DSQL.

When the statement changes nothing, one read of both rows says why, in the
original's order and words: ``Payer account not found``, ``Insufficient balance:
<balance>``, ``Payee account not found``. If that read finds nothing wrong, another
transaction changed the rows in between: that is a conflict (``TransactionConflict``,
SQLSTATE 40001), retried by ch05/ch06 like any other.

The SQL is built once from the ORM's tables with SQLAlchemy Core and compiled once
per dialect; the hot path then runs it on the pooled psycopg connection directly.
SQLAlchemy's per-statement machinery cost more than the database work here (see
benchmarks/transfer.py): the ORM stays the model, not the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import psycopg
from sqlalchemy import (
    BindParameter,
    Engine,
    Table,
    bindparam,
    case,
    func,
    literal_column,
    select,
    update,
)

from bank.errors import AccountNotFound, InsufficientFunds, InvalidRequest, TransactionConflict
from bank.models import Account, Account2
from bank.occ import RetryPolicy, is_conflict, run_with_retry
from bank.validation import TransferRequest

ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]
ACCOUNTS2: Table = Account2.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class TransferResult:
    payer_balance: Decimal
    seconds: float
    attempts: int = 1


def _transfer_statement(table: Table):
    c = table.c
    payer: BindParameter[Any] = bindparam("payer")
    payee: BindParameter[Any] = bindparam("payee")
    amount: BindParameter[Any] = bindparam("amount")
    both_exist = (
        select(func.count()).select_from(table).where(c.id.in_([payer, payee])).scalar_subquery()
    )
    payer_balance = select(c.balance).where(c.id == payer).scalar_subquery()
    return (
        update(table)
        .values(balance=c.balance + case((c.id == payer, -amount), else_=amount))
        .where(c.id.in_([payer, payee]), both_exist == literal_column("2"), payer_balance >= amount)
        .returning(c.id, c.balance)
    )


def _balances_statement(table: Table):
    c = table.c
    return select(c.id, c.balance).where(c.id.in_([bindparam("payer"), bindparam("payee")]))


@cache
def _sql(table: Table, dialect) -> tuple[str, str]:
    """The transfer and its diagnosis, compiled once for this table and dialect."""
    return tuple(  # type: ignore[return-value]
        str(stmt.compile(dialect=dialect))
        for stmt in (_transfer_statement(table), _balances_statement(table))
    )


def get_balance(
    engine: Engine, account_id: int, policy: RetryPolicy | None = None, table: Table = ACCOUNTS
) -> Decimal:
    """ch03's read. Retried on 40001: after DDL, a pooled DSQL connection may see OC001."""

    def read():
        with engine.connect() as conn:
            return conn.execute(select(table.c.balance).where(table.c.id == account_id)).first()

    balance, _ = run_with_retry(read, policy or RetryPolicy())
    if balance is None:
        raise AccountNotFound(f"Account {account_id} not found")
    return balance[0]


def _autocommit(engine: Engine, sql: str, params: dict) -> list[tuple]:
    """Run one statement as a transaction of its own on a pooled psycopg connection."""
    pooled = engine.raw_connection()
    try:
        conn = pooled.driver_connection
        assert isinstance(conn, psycopg.Connection)
        conn.autocommit = True
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            if not conn.closed:
                conn.autocommit = False
    except psycopg.Error:
        if pooled.driver_connection is None or pooled.driver_connection.broken:
            pooled.invalidate()  # a dead connection never goes back to the pool
        raise
    finally:
        pooled.close()


def transfer_once(engine: Engine, table: Table, req: TransferRequest) -> Decimal:
    """One transaction. A conflict propagates as an error with SQLSTATE 40001."""
    transfer_sql, balances_sql = _sql(table, engine.dialect)
    params = {"payer": req.payer_id, "payee": req.payee_id, "amount": req.amount}
    try:
        rows = _autocommit(engine, transfer_sql, params)
    except psycopg.errors.NumericValueOutOfRange:
        raise InvalidRequest(
            "'amount' would take the payee's balance beyond numeric(18,6)"
        ) from None
    for account_id, balance in rows:
        if account_id == req.payer_id:
            return balance
    # Nothing moved: say why, in the original's order.
    found = dict(_autocommit(engine, balances_sql, params))
    if req.payer_id not in found:
        raise AccountNotFound("Payer account not found")
    after = found[req.payer_id] - req.amount
    if after < 0:
        raise InsufficientFunds(f"Insufficient balance: {after}")
    if req.payee_id not in found:
        raise AccountNotFound("Payee account not found")
    raise TransactionConflict("the accounts changed while the transfer ran, please retry")


def transfer(engine: Engine, table: Table, req: TransferRequest) -> TransferResult:
    """ch04: no retry. A conflict is reported as ``TransactionConflict``."""
    start = time.perf_counter()
    try:
        balance = transfer_once(engine, table, req)
    except psycopg.Error as exc:
        if is_conflict(exc):
            raise TransactionConflict(
                f"change conflicts with another transaction, please retry (SQLSTATE {exc.sqlstate})"
            ) from exc
        raise
    return TransferResult(balance, time.perf_counter() - start)


def transfer_with_retry(
    engine: Engine,
    table: Table,
    req: TransferRequest,
    policy: RetryPolicy,
    deadline: float | None = None,
    **retry_options: Any,
) -> TransferResult:
    """ch05/ch06: the whole transaction again on 40001, as ``bank.occ`` decides."""
    start = time.perf_counter()
    attempt: Callable[[], Decimal] = lambda: transfer_once(engine, table, req)  # noqa: E731
    balance, attempts = run_with_retry(attempt, policy, deadline=deadline, **retry_options)
    return TransferResult(balance, time.perf_counter() - start, attempts)
