"""An in-memory unit of work, for the service tests: the services' protocols, no database.

It keeps accounts and ledger entries in dictionaries, copies them on entry and keeps
the copy only on ``commit()``, like a transaction. Conflicts and lost connections are
injected by the tests (``fail_next``).
"""

from __future__ import annotations

import copy
import uuid
from decimal import Decimal
from typing import Any

from bank.adapters.errors import DatabaseUnavailable, TransferAlreadyRecorded
from bank.domain.errors import AccountNotFound, InsufficientFunds
from bank.domain.model import Account, Transfer, UuidAccount, balance_of, balances_after


class FakeAccounts:
    def __init__(self, kind, rows: dict):
        self.kind, self.rows = kind, rows

    def get(self, account_id: Any):
        return self.rows.get(account_id)

    def get_many(self, ids) -> dict:
        return {i: self.rows[i] for i in ids if i in self.rows}

    def move(self, payer_id: Any, payee_id: Any, amount: Decimal) -> Decimal | None:
        payer, payee = self.rows.get(payer_id), self.rows.get(payee_id)
        try:  # the domain's rule, as the SQL move applies it
            payer.balance, payee.balance = balances_after(  # type: ignore[union-attr]
                balance_of(payer), balance_of(payee), amount)
        except (AccountNotFound, InsufficientFunds):
            return None
        return payer.balance  # type: ignore[union-attr]

    def put_many(self, ids, balance: Decimal) -> int:
        n = 0
        for i in ids:
            self.rows[i] = self.kind(i, balance)
            n += 1
        return n

    def create_many(self, count: int, balance: Decimal) -> list[str]:
        ids = [uuid.uuid4() for _ in range(count)]
        self.put_many(ids, balance)
        return [str(i) for i in ids]

    def exists(self, account_id: Any) -> bool:
        return account_id in self.rows

    def total(self, ids) -> tuple[int, Decimal]:
        found = [self.rows[i] for i in ids if i in self.rows]
        return len(found), sum((a.balance for a in found), Decimal(0))


class FakeLedger:
    def __init__(self, rows: dict, store: FakeStore):
        self.rows, self.store = rows, store

    def add(self, transfer: Transfer) -> None:
        if transfer.id in self.rows:
            raise TransferAlreadyRecorded("already in the ledger")
        self.rows[transfer.id] = transfer

    def get(self, transfer_id: uuid.UUID) -> Transfer | None:
        if self.store.fail_reads:
            self.store.fail_reads -= 1
            raise DatabaseUnavailable("injected: the ledger cannot be read")
        return self.rows.get(transfer_id)

    def count(self, ids) -> int:
        return sum(1 for i in ids if i in self.rows)


class FakeStore:
    """What the fake 'database' holds, shared by the units of work made from it."""

    def __init__(self) -> None:
        self.tables: dict[str, dict] = {"Account": {}, "UuidAccount": {}, "ledger": {}}
        # Raised by the next commit(s); with True, that commit happened all the same
        # (a lost reply to COMMIT).
        self.fail_next: list[tuple[BaseException, bool]] = []
        self.fail_reads = 0  # ledger lookups that fail with DatabaseUnavailable
        self.commits = 0

    def factory(self, deadline: float | None = None) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, deadline)


class FakeUnitOfWork:
    def __init__(self, store: FakeStore, deadline: float | None = None):
        self.store, self.deadline = store, deadline

    def __enter__(self) -> FakeUnitOfWork:
        self.working = copy.deepcopy(self.store.tables)
        self.transfers = FakeLedger(self.working["ledger"], self.store)
        return self

    def accounts(self, kind) -> FakeAccounts:
        return FakeAccounts(kind, self.working[kind.__name__])

    def commit(self) -> None:
        if self.store.fail_next:
            error, committed = self.store.fail_next.pop(0)
            if committed:
                self.store.tables = self.working
                self.store.commits += 1
            raise error
        self.store.tables = self.working
        self.store.commits += 1

    def __exit__(self, *exc_info) -> None:
        self.working = {}


__all__ = ["Account", "FakeStore", "UuidAccount"]
