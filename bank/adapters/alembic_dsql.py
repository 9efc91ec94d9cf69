"""Alembic's implementation for the ``auroradsql`` dialect (Alembic ships none).

Imported by ``alembic/env.py``, which runs the migrations from a laptop or from the
deploy-time migration function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic.ddl.postgresql import PostgresqlImpl
from sqlalchemy import Column, Index
from sqlalchemy.schema import CreateIndex
from sqlalchemy.types import NullType

from bank.adapters.ddl import DSQL_DIALECT, create_index


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

    #: Runs one statement, retried as the caller decides: ``alembic/env.py`` plugs in the
    #: project's retry loop, so that a statement refused with OC001 (SQLSTATE 40001: a
    #: concurrent schema change) runs again. Each statement is its own transaction, so
    #: running a refused one again is safe.
    run_statement: Callable[[Callable[[], Any]], Any] = staticmethod(lambda statement: statement())

    def _exec(self, construct: Any, *args: Any, **kw: Any) -> Any:
        return self.run_statement(lambda: super(AuroraDSQLImpl, self)._exec(construct, *args, **kw))

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
