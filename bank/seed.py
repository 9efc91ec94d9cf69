"""Seed data (not schema): ch04's accounts 1..1000 and ch06's two example UUID accounts.

Idempotent: running it again puts the same rows back at the same balances, like the
tutorial's ``setup.sql``. 1,000 rows per transaction: within DSQL's 3,000-row limit.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine, text

SEED_ACCOUNTS = 1000
SEED_BALANCE = Decimal("100")
EXAMPLE_UUIDS = (
    "123e4567-e89b-12d3-a456-426614174000",
    "123e4567-e89b-12d3-a456-426614174001",
)


def seed(engine: Engine, accounts: int = SEED_ACCOUNTS, balance: Decimal = SEED_BALANCE) -> dict:
    if not 1 <= accounts <= 3000:
        raise ValueError("seed between 1 and 3000 accounts (DSQL's per-transaction row limit)")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (id, balance) "
                "SELECT g, :balance FROM generate_series(1, :n) AS g "
                "ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance"
            ),
            {"n": accounts, "balance": balance},
        )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts2 (id, balance) VALUES (:id, :balance) "
                "ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance"
            ),
            [{"id": u, "balance": balance} for u in EXAMPLE_UUIDS],
        )
    return {"accounts": accounts, "uuid_accounts": list(EXAMPLE_UUIDS), "balance": str(balance)}
