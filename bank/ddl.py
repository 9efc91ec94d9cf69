"""DSQL-safe DDL shared by the migrations and the ch07 lab.

On Aurora DSQL every index is built by ``CREATE INDEX ASYNC`` (the dialect compiles
it so), which returns a ``job_id`` at once; we wait for that job with
``CALL sys.wait_for_job(...)`` before going on, so nothing that follows runs
against an index that is not there yet. Locally the same ``Index`` compiles to a
plain ``CREATE INDEX``.

DSQL allows one DDL statement per transaction and no DML beside it: run DDL on a
connection in AUTOCOMMIT mode, so each statement is its own transaction.
"""

from __future__ import annotations

from alembic.ddl.postgresql import PostgresqlImpl
from sqlalchemy import Column, Connection, Index, text
from sqlalchemy.schema import CreateIndex
from sqlalchemy.types import NullType

from bank.errors import BankError

DSQL_DIALECT = "auroradsql"


class IndexBuildFailed(BankError):
    """DSQL reported that an asynchronous index build job failed."""


def is_dsql(connection: Connection) -> bool:
    return connection.dialect.name == DSQL_DIALECT


def wait_for_job(connection: Connection, job_id: str) -> None:
    ok = connection.execute(text("CALL sys.wait_for_job(:job_id)"), {"job_id": job_id}).scalar()
    if ok is False:
        raise IndexBuildFailed(f"index build job {job_id} failed (see sys.jobs)")


def create_index(connection: Connection, index: Index, if_not_exists: bool = False) -> None:
    """Create ``index``; on DSQL wait for its asynchronous build job to finish."""
    result = connection.execute(CreateIndex(index, if_not_exists=if_not_exists))
    if is_dsql(connection) and result.returns_rows:
        job_id = result.scalar()
        if job_id is not None:  # None: IF NOT EXISTS found the index already there
            wait_for_job(connection, str(job_id))


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
