"""Balance lookup (ch03) and money transfer (ch04-ch06).

The transfer is ONE set-based statement that moves the money between both rows, as
CockroachDB's bank workload does: it updates both accounts only if both exist and the
payer can afford it, and returns the new balances. One statement means fewer round
trips and a smaller conflict window than read-modify-write. When it changes nothing,
a read in the same transaction (same snapshot) says why, in the original's order and
words: ``Payer account not found``, ``Insufficient balance: <balance>``,
``Payee account not found``.

Core statements built once from the ORM tables and compiled once (SQLAlchemy's
statement cache); the ORM stays the model, not the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, case, func, select, update
from sqlalchemy.exc import DBAPIError

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
    payer, payee, amount = bindparam("payer"), bindparam("payee"), bindparam("amount")
    both_exist = (
        select(func.count()).select_from(table).where(c.id.in_([payer, payee])).scalar_subquery()
    )
    payer_balance = select(c.balance).where(c.id == payer).scalar_subquery()
    return (
        update(table)
        .values(balance=c.balance + case((c.id == payer, -amount), else_=amount))
        .where(c.id.in_([payer, payee]), both_exist == 2, payer_balance >= amount)
        .returning(c.id, c.balance)
    )


def _balances_statement(table: Table):
    c = table.c
    return select(c.id, c.balance).where(c.id.in_([bindparam("payer"), bindparam("payee")]))


_STATEMENTS = {t.name: (_transfer_statement(t), _balances_statement(t)) for t in (ACCOUNTS, ACCOUNTS2)}


def get_balance(engine: Engine, account_id: int, table: Table = ACCOUNTS) -> Decimal:
    with engine.connect() as conn:
        balance = conn.execute(select(table.c.balance).where(table.c.id == account_id)).first()
    if balance is None:
        raise AccountNotFound(f"Account {account_id} not found")
    return balance[0]


def _move_money(conn: Connection, table: Table, req: TransferRequest) -> Decimal:
    transfer, balances = _STATEMENTS[table.name]
    params = {"payer": req.payer_id, "payee": req.payee_id, "amount": req.amount}
    rows = conn.execute(transfer, params).all()
    for account_id, balance in rows:
        if account_id == req.payer_id:
            return balance
    # Nothing moved: say why, from the same snapshot, in the original's order.
    found = dict(conn.execute(balances, params).all())
    if req.payer_id not in found:
        raise AccountNotFound("Payer account not found")
    after = found[req.payer_id] - req.amount
    if after < 0:
        raise InsufficientFunds(f"Insufficient balance: {after}")
    raise AccountNotFound("Payee account not found")


def transfer_once(engine: Engine, table: Table, req: TransferRequest) -> Decimal:
    """One transaction. Conflicts propagate as the driver's error (SQLSTATE 40001)."""
    try:
        with engine.begin() as conn:
            return _move_money(conn, table, req)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "22003":  # numeric field overflow
            raise InvalidRequest(
                "'amount' would take the payee's balance beyond numeric(18,6)"
            ) from None
        raise


def transfer(engine: Engine, table: Table, req: TransferRequest) -> TransferResult:
    """ch04: no retry. A conflict is reported as ``TransactionConflict``."""
    start = time.perf_counter()
    try:
        balance = transfer_once(engine, table, req)
    except DBAPIError as exc:
        if is_conflict(exc):
            raise TransactionConflict(
                f"change conflicts with another transaction, please retry "
                f"(SQLSTATE {exc.orig.sqlstate if exc.orig else '40001'})"  # type: ignore[union-attr]
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
