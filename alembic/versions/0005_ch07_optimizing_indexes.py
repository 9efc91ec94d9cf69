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

from alembic.operations import ops  # noqa: E402

from bank.adapters.orm import OPTIMIZING_INDEXES  # noqa: E402  (the model's own Index definitions)


def upgrade() -> None:
    # One index per statement, each waited for on DSQL before the next (bank.adapters.ddl).
    for index in OPTIMIZING_INDEXES:
        op.invoke(ops.CreateIndexOp.from_index(index))


def downgrade() -> None:
    for index in reversed(OPTIMIZING_INDEXES):
        op.drop_index(index.name, table_name="accounts7")
