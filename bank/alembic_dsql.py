"""Alembic's implementation for the ``auroradsql`` dialect (Alembic ships none).

Imported by ``alembic/env.py`` only: Alembic is a development tool and is not in the
Lambda layer.
"""

from __future__ import annotations

from alembic.ddl.postgresql import PostgresqlImpl
from sqlalchemy import Column, Index
from sqlalchemy.schema import CreateIndex
from sqlalchemy.types import NullType

from bank.ddl import DSQL_DIALECT, create_index


class AuroraDSQLImpl(PostgresqlImpl):
    """Alembic has no implementation for the ``auroradsql`` dialect: this is it.

    - ``transactional_ddl = False``: no migration-wide transaction; env.py also runs
      DSQL migrations in AUTOCOMMIT, so each DDL statement and each write to
      ``alembic_version`` is a transaction of its own.
    - ``create_index`` waits for the ``CREATE INDEX ASYNC`` job. In ``--sql`` mode it
      writes the psql form: the statement ends in ``\\gset`` (psql stores the
      returned ``job_id``) and the next line waits for that job.
    """

    __dialect__ = DSQL_DIALECT
    transactional_ddl = False

    def create_index(self, index: Index, **kw) -> None:
        # Alembic builds the Index on a stub table holding only the key columns; the
        # dialect looks INCLUDE columns up in that table, so add them to it.
        assert index.table is not None
        for name in index.dialect_options[DSQL_DIALECT]["include"] or ():
            if isinstance(name, str) and name not in index.table.c:
                index.table.append_column(Column(name, NullType()))
        if self.as_sql:
            sql = str(CreateIndex(index, **kw).compile(dialect=self.dialect)).strip()
            self.static_output(sql + " \\gset")
            self.static_output("CALL sys.wait_for_job(:'job_id');")
            return
        assert self.connection is not None
        create_index(self.connection, index, if_not_exists=bool(kw.get("if_not_exists")))
