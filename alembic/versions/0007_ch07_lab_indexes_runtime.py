"""ch07: the optimizing indexes leave the schema: the lab's optimize builds them at run time

Revision 0005 made the two optimizing indexes part of the schema, so the lab's `setup`
(which rebuilds accounts7 with only the suboptimal index, as the tutorial does) left
the database different from the head revision until `optimize` ran. They are the
lab's subject, built at run time as in the tutorial: Alembic now ignores them
(alembic/env.py), and this revision drops them from databases that have them.

Revision ID: 0007_ch07_lab_indexes_runtime
Revises: 0006_transfers_ledger
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0007_ch07_lab_indexes_runtime"
down_revision: str | None = "0006_transfers_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


COVERED = ["region_code", "status", "created_at", "metadata_value"]


def upgrade() -> None:
    # One DROP INDEX per transaction on DSQL (alembic/env.py runs in AUTOCOMMIT).
    op.drop_index("idx_accounts7_metadata_covering", table_name="accounts7", if_exists=True)
    op.drop_index("idx_accounts7_metadata", table_name="accounts7", if_exists=True)


def downgrade() -> None:
    op.create_index("idx_accounts7_metadata", "accounts7", ["metadata_key", "account_type"],
                    if_not_exists=True)
    op.create_index("idx_accounts7_metadata_covering", "accounts7",
                    ["metadata_key", "account_type"], if_not_exists=True,
                    postgresql_include=COVERED, auroradsql_include=COVERED)
