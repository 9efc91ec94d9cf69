"""ledger: transfers, one row per applied transfer (ch04-ch06), keyed by its transfer_id

Not in the original tutorial: bank writes every transfer's ledger entry in the same
transaction as the balances it moves, so that a replayed request, or one whose COMMIT
reply was lost, is settled by looking its transfer_id up instead of being applied twice.

Revision ID: 0006_transfers_ledger
Revises: 0005_ch07_optimizing_indexes
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_transfers_ledger"
down_revision: str | None = "0005_ch07_optimizing_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payer_id", sa.String(36), nullable=False),
        sa.Column("payee_id", sa.String(36), nullable=False),
        sa.Column("amount", sa.Numeric(18, 6), nullable=False),
        sa.Column("payer_balance", sa.Numeric(18, 6), nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name="transfers_pkey"),
    )


def downgrade() -> None:
    op.drop_table("transfers")
