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

from alembic.operations import ops  # noqa: E402

from bank.adapters.orm import IDX_TYPE  # noqa: E402  (the model's own Index definition)


def upgrade() -> None:
    # CREATE INDEX locally; CREATE INDEX ASYNC + sys.wait_for_job on DSQL (bank.adapters.ddl).
    op.invoke(ops.CreateIndexOp.from_index(IDX_TYPE))


def downgrade() -> None:
    op.drop_index(IDX_TYPE.name, table_name="accounts7")
