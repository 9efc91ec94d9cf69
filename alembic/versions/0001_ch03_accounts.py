"""ch03: accounts(id int primary key, balance numeric(18,6) not null)

Revision ID: 0001_ch03_accounts
Revises:
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_ch03_accounts"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("balance", sa.Numeric(18, 6), nullable=False),
        sa.PrimaryKeyConstraint("id", name="accounts_pkey"),
    )


def downgrade() -> None:
    op.drop_table("accounts")
