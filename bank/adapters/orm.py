"""The ORM mapping: the tutorial's tables, the ledger, and how the domain classes map onto them.

Imperative mapping (SQLAlchemy's ``registry.map_imperatively``) keeps the domain classes
in ``bank.domain.model`` plain Python; the tables live here, with the constraint naming
convention and the ch07 lab's indexes, and ``Base.metadata`` is what Alembic compares
the migrations with (``alembic check``).

Money is ``Numeric(18, 6)``: what DSQL makes of a plain ``numeric``. Declaring it
explicitly makes local PostgreSQL store exactly what DSQL stores.
"""

from __future__ import annotations

from sqlalchemy import (
    CHAR,
    TIMESTAMP,
    Column,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import registry

from bank.domain.model import LAB_TEXT_LENGTHS, Account, LabAccount, Transfer, UuidAccount

MONEY = Numeric(18, 6)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "%(table_name)s_pkey",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
mapper_registry = registry(metadata=metadata)

accounts = Table(
    "accounts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    # NOT NULL, unlike the tutorial's table: a NULL balance would swallow the money
    # credited to it (NULL + amount is NULL).
    Column("balance", MONEY, nullable=False),
)

accounts2 = Table(
    "accounts2", metadata,
    Column("id", Uuid, primary_key=True, server_default=text("gen_random_uuid()")),
    Column("balance", MONEY, nullable=False),
)

# The ledger: one row per applied transfer, written in the transfer's own transaction.
# Its primary key is the request's transfer_id, so a replay cannot apply twice.
transfers = Table(
    "transfers", metadata,
    Column("id", Uuid, primary_key=True),
    Column("payer_id", String(36), nullable=False),
    Column("payee_id", String(36), nullable=False),
    Column("amount", MONEY, nullable=False),
    Column("payer_balance", MONEY, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
)

accounts7 = Table(
    "accounts7", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("account_type", String(LAB_TEXT_LENGTHS["account_type"])),
    Column("region_code", CHAR(LAB_TEXT_LENGTHS["region_code"])),
    Column("status", String(LAB_TEXT_LENGTHS["status"])),
    Column("created_at", TIMESTAMP, primary_key=True, server_default=func.now()),
    Column("balance", Numeric(10, 2)),
    Column("metadata_key", String(LAB_TEXT_LENGTHS["metadata_key"])),
    Column("metadata_value", Text),
)


def _include(*columns: str) -> dict:
    # INCLUDE for both dialects: plain PostgreSQL and Aurora DSQL.
    return {"postgresql_include": list(columns), "auroradsql_include": list(columns)}


# The lab's indexes, defined once. The suboptimal one is part of the schema (migration
# 0004; ``setup`` rebuilds it). The two that ``optimize`` builds at run time, as the
# tutorial does, are not: they live on a copy of the table outside ``metadata``, so that
# ``setup`` leaves the schema at the head revision, and Alembic ignores them
# (``alembic/env.py``).
IDX_TYPE = Index("idx_accounts7_type", accounts7.c.account_type)
_lab_accounts7 = accounts7.to_metadata(MetaData())
IDX_METADATA = Index(
    "idx_accounts7_metadata", _lab_accounts7.c.metadata_key, _lab_accounts7.c.account_type
)
IDX_METADATA_COVERING = Index(
    "idx_accounts7_metadata_covering",
    _lab_accounts7.c.metadata_key,
    _lab_accounts7.c.account_type,
    **_include("region_code", "status", "created_at", "metadata_value"),
)
OPTIMIZING_INDEXES = (IDX_METADATA, IDX_METADATA_COVERING)


def start_mappers() -> None:
    """Map the domain classes onto the tables, once per process."""
    if mapper_registry.mappers:
        return
    mapper_registry.map_imperatively(Account, accounts)
    mapper_registry.map_imperatively(UuidAccount, accounts2)
    mapper_registry.map_imperatively(Transfer, transfers)
    mapper_registry.map_imperatively(LabAccount, accounts7)


start_mappers()
