"""ch07: the first, suboptimal index idx_accounts7_type (account_type)

Revision ID: 0004_ch07_type_index
Revises: 0003_ch07_accounts7
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0004_ch07_type_index"
down_revision: str | None = "0003_ch07_accounts7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # CREATE INDEX locally; CREATE INDEX ASYNC + sys.wait_for_job on DSQL (bank.adapters.ddl).
    op.create_index("idx_accounts7_type", "accounts7", ["account_type"])


def downgrade() -> None:
    op.drop_index("idx_accounts7_type", table_name="accounts7")
