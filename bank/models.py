"""The ORM model: one table per chapter that needs one.

Money is ``Numeric(18, 6)``: what DSQL makes of a plain ``numeric``. Declaring it
explicitly makes local PostgreSQL store exactly what DSQL stores.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CHAR,
    TIMESTAMP,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MONEY = Numeric(18, 6)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "%(table_name)s_pkey",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    """ch03-ch05: integer ids, as in the tutorial's ``accounts``."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # NOT NULL, unlike the tutorial's table: a NULL balance would swallow the money
    # credited to it (NULL + amount is NULL).
    balance: Mapped[Decimal] = mapped_column(MONEY, nullable=False)


class Account2(Base):
    """ch06: UUID keys spread writes over DSQL's key space instead of a hot range."""

    __tablename__ = "accounts2"

    id: Mapped[uuid.UUID] = mapped_column(
        Uuid, primary_key=True, server_default=text("gen_random_uuid()")
    )
    balance: Mapped[Decimal] = mapped_column(MONEY, nullable=False)


def _include(*columns: str) -> dict:
    # INCLUDE for both dialects: plain PostgreSQL and Aurora DSQL.
    return {"postgresql_include": list(columns), "auroradsql_include": list(columns)}


class Account7(Base):
    """ch07: the query-optimization lab's table, with the seed's columns and indexes."""

    __tablename__ = "accounts7"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_type: Mapped[str | None] = mapped_column(String(20))
    region_code: Mapped[str | None] = mapped_column(CHAR(2))
    status: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP, primary_key=True, server_default=func.now()
    )
    balance: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    metadata_key: Mapped[str | None] = mapped_column(String(50))
    metadata_value: Mapped[str | None] = mapped_column(Text)


# The lab's indexes, defined once: the model, the migrations and ``optimize`` use these.
IDX_TYPE = Index("idx_accounts7_type", Account7.account_type)
IDX_METADATA = Index("idx_accounts7_metadata", Account7.metadata_key, Account7.account_type)
IDX_METADATA_COVERING = Index(
    "idx_accounts7_metadata_covering",
    Account7.metadata_key,
    Account7.account_type,
    **_include("region_code", "status", "created_at", "metadata_value"),
)
OPTIMIZING_INDEXES = (IDX_METADATA, IDX_METADATA_COVERING)
