"""ch07: accounts7, the query-optimization lab's table

Revision ID: 0003_ch07_accounts7
Revises: 0002_ch06_accounts2
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_ch07_accounts7"
down_revision: str | None = "0002_ch06_accounts2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts7",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_type", sa.String(20), nullable=True),
        sa.Column("region_code", sa.CHAR(2), nullable=True),
        sa.Column("status", sa.String(10), nullable=True),
        sa.Column("created_at", sa.TIMESTAMP(), server_default=sa.func.now(), nullable=False),
        sa.Column("balance", sa.Numeric(10, 2), nullable=True),
        sa.Column("metadata_key", sa.String(50), nullable=True),
        sa.Column("metadata_value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", "created_at", name="accounts7_pkey"),
    )


def downgrade() -> None:
    op.drop_table("accounts7")
