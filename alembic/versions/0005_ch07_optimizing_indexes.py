"""ch07: the optimizing composite index and its covering twin

Revision ID: 0005_ch07_optimizing_indexes
Revises: 0004_ch07_type_index
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0005_ch07_optimizing_indexes"
down_revision: str | None = "0004_ch07_type_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


COVERED = ["region_code", "status", "created_at", "metadata_value"]


def upgrade() -> None:
    # One index per statement, each waited for on DSQL before the next (bank.adapters.ddl).
    op.create_index("idx_accounts7_metadata", "accounts7", ["metadata_key", "account_type"])
    op.create_index("idx_accounts7_metadata_covering", "accounts7",
                    ["metadata_key", "account_type"],
                    postgresql_include=COVERED, auroradsql_include=COVERED)


def downgrade() -> None:
    op.drop_index("idx_accounts7_metadata_covering", table_name="accounts7")
    op.drop_index("idx_accounts7_metadata", table_name="accounts7")
