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

from sqlalchemy import Connection, Index, text
from sqlalchemy.schema import CreateIndex

from bank.adapters.errors import IndexBuildFailed

DSQL_DIALECT = "auroradsql"



def is_dsql(connection: Connection) -> bool:
    return connection.dialect.name == DSQL_DIALECT


def wait_for_job(connection: Connection, job_id: str) -> None:
    ok = connection.execute(text("CALL sys.wait_for_job(:job_id)"), {"job_id": job_id}).scalar()
    if ok is False:
        raise IndexBuildFailed(f"index build job {job_id} failed (see sys.jobs)")


def create_index(connection: Connection, index: Index, if_not_exists: bool = False) -> None:
    """Create ``index``; on DSQL wait for its asynchronous build job to finish."""
    result = connection.execute(CreateIndex(index, if_not_exists=if_not_exists))
    if not is_dsql(connection):
        return
    job_id = result.scalar() if result.returns_rows else None
    if job_id is not None:
        wait_for_job(connection, str(job_id))
        return
    # IF NOT EXISTS found the index: an earlier build may still run (a Lambda that timed
    # out while waiting) or have failed. DSQL marks an index valid once its build is done.
    valid = connection.execute(
        text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
        {"name": index.name},
    ).scalar()
    if valid is False:
        raise IndexBuildFailed(
            f"index {index.name} exists but is not valid yet: an earlier build is running or "
            "failed (see sys.jobs); wait, or DROP INDEX and run again"
        )
