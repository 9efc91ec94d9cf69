"""Seed data (not schema): ch04's accounts 1..1000 and ch06's two example UUID accounts.

Idempotent: running it again puts the same rows back at the same balances, like the
tutorial's ``setup.sql``. 1,000 rows per transaction: within DSQL's 3,000-row limit.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from bank.domain.errors import InvalidRequest
from bank.domain.model import Account, UuidAccount
from bank.services.unit_of_work import UnitOfWorkFactory

SEED_ACCOUNTS = 1000
SEED_BALANCE = Decimal("100")
MAX_ROWS_PER_TRANSACTION = 3000  # Aurora DSQL
EXAMPLE_UUIDS = (
    uuid.UUID("123e4567-e89b-12d3-a456-426614174000"),
    uuid.UUID("123e4567-e89b-12d3-a456-426614174001"),
)


def seed(uow_factory: UnitOfWorkFactory, accounts: int = SEED_ACCOUNTS,
         balance: Decimal = SEED_BALANCE) -> dict:
    if not 1 <= accounts <= MAX_ROWS_PER_TRANSACTION:
        raise InvalidRequest(
            f"seed between 1 and {MAX_ROWS_PER_TRANSACTION} accounts (DSQL's per-transaction "
            f"row limit), got {accounts}"
        )
    with uow_factory() as uow:
        uow.accounts(Account).put_many(range(1, accounts + 1), balance)
        uow.commit()
    with uow_factory() as uow:
        uow.accounts(UuidAccount).put_many(EXAMPLE_UUIDS, balance)
        uow.commit()
    return {"accounts": accounts, "uuid_accounts": [str(u) for u in EXAMPLE_UUIDS],
            "balance": str(balance)}
