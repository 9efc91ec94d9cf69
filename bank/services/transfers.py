"""Balance lookup (ch03) and money transfer (ch04-ch06), each in a unit of work.

A transfer is one unit of work:

1. ``accounts.move``: ONE statement moves the money between both accounts if both exist
   and the payer can pay (the domain's rule, applied by the database), and returns the
   payer's new balance;
2. if nothing moved, the request may be a replay (its ``transfer_id`` is in the ledger);
   if not, the domain's rule (``balances_after``) says why, from the same snapshot, in
   the original's order and words; if it finds nothing wrong, another transaction
   changed the rows in between: a conflict;
3. the ledger entry (``Transfer``) is added and the unit of work commits: the balances
   and the entry together, or neither.

Idempotency: the ledger's key is the request's ``transfer_id``. The same id sent again
finds its entry (the INSERT fails on the key, rolling the whole transaction back) and
gets the first outcome; a different request under a used id is refused
(``TransferIdReused``). When COMMIT's reply is lost, the entry settles the outcome: an
entry this request wrote (its ``created_at`` is one of this request's attempts') is its
first application, any other entry makes it a replay.

ch04 does not retry conflicts (``RetryPolicy(retry_conflicts=False)``): the tutorial's
lesson is to see them. ch05/ch06 retry them (``bank.services.retry``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from bank.adapters.errors import (
    CommitOutcomeUnknown,
    DatabaseTimeout,
    DatabaseUnavailable,
    TransactionConflict,
    TransferAlreadyRecorded,
    ValueOutOfRange,
)
from bank.domain.errors import AccountNotFound, InvalidRequest, TransferIdReused
from bank.domain.model import (
    Account,
    AccountKind,
    Transfer,
    TransferRequest,
    balance_of,
    balances_after,
)
from bank.services.errors import TransferOutcomeUnknown
from bank.services.retry import RetryPolicy, run
from bank.services.unit_of_work import UnitOfWorkFactory


@dataclass(frozen=True)
class TransferResult:
    transfer_id: uuid.UUID
    payer_balance: Decimal
    seconds: float
    attempts: int = 1
    replayed: bool = False  # the transfer_id was already in the ledger: its first outcome
    conflicts: int = 0  # attempts that ended in an optimistic-concurrency conflict


def get_balance(uow_factory: UnitOfWorkFactory, account_id: int, *, policy: RetryPolicy,
                deadline: float | None = None) -> Decimal:
    """ch03's read. Retried on a conflict: after DDL, a pooled DSQL connection may see OC001."""

    def read() -> Decimal | None:
        with uow_factory(deadline=deadline) as uow:
            account = uow.accounts(Account).get(account_id)
            return None if account is None else account.balance

    balance, _ = run(read, policy, deadline=deadline)
    if balance is None:
        raise AccountNotFound(f"Account {account_id} not found")
    return balance


def transfer(uow_factory: UnitOfWorkFactory, kind: AccountKind, request: TransferRequest, *,
             policy: RetryPolicy, deadline: float | None = None) -> TransferResult:
    """Apply ``request`` once; retried as ``policy`` allows, never past ``deadline``."""
    start = time.perf_counter()
    written: list[datetime] = []  # the created_at of each ledger entry an attempt wrote

    def apply() -> tuple[Decimal, bool]:
        with uow_factory(deadline=deadline) as uow:
            accounts = uow.accounts(kind)
            balance = accounts.move(request.payer_id, request.payee_id, request.amount)
            if balance is None:
                # Nothing moved. A replay is answered with its first outcome, whatever the
                # balances say now; otherwise the rule says why, from the same snapshot.
                if uow.transfers.get(request.transfer_id) is not None:
                    raise TransferAlreadyRecorded("this transfer_id is already in the ledger")
                found = accounts.get_many((request.payer_id, request.payee_id))
                balances_after(balance_of(found.get(request.payer_id)),
                               balance_of(found.get(request.payee_id)), request.amount)
                raise TransactionConflict("the accounts changed while the transfer ran")
            entry = Transfer.record(request, balance)
            written.append(entry.created_at)
            uow.transfers.add(entry)
            uow.commit()
        return balance, False

    conflicts = 0

    def attempt() -> tuple[Decimal, bool]:
        nonlocal conflicts
        try:
            try:
                return apply()
            except TransferAlreadyRecorded:
                first = recorded()
                if first is None:  # its transaction is not visible yet: a conflict
                    raise TransactionConflict(
                        "the transfer_id is being recorded elsewhere") from None
                return first.payer_balance, True
        except TransactionConflict:
            conflicts += 1
            raise

    def recorded() -> Transfer | None:
        with uow_factory(deadline=deadline) as uow:
            first = uow.transfers.get(request.transfer_id)
        if first is not None and not first.matches(request):
            raise TransferIdReused(
                f"transfer_id {request.transfer_id} already names another transfer "
                f"({first.payer_id} -> {first.payee_id}, {first.amount})"
            )
        return first

    def settle(unknown: CommitOutcomeUnknown) -> tuple[Decimal, bool] | None:
        """COMMIT's reply was lost: the ledger says whether it committed."""
        lookup = replace(policy, retry_conflicts=True)
        try:
            first, _ = run(recorded, lookup, deadline=deadline)
        except (DatabaseUnavailable, DatabaseTimeout) as exc:
            raise TransferOutcomeUnknown(
                f"COMMIT's reply was lost and the ledger cannot be read ({exc}); send the same "
                f"request again with transfer_id {request.transfer_id}: it cannot apply twice"
            ) from exc
        if first is None:
            return None
        return first.payer_balance, first.created_at not in written

    try:
        (balance, replayed), attempts = run(attempt, policy, deadline=deadline, settle=settle)
    except ValueOutOfRange:
        raise InvalidRequest("'amount' would take the payee's balance beyond numeric(18,6)") \
            from None
    return TransferResult(request.transfer_id, balance, time.perf_counter() - start, attempts,
                          replayed, conflicts)
