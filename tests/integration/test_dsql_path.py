"""The DSQL code path on the local server, in strict mode: not a stand-in.

The application's engine speaks the ``auroradsql`` dialect to a server that refuses what
DSQL refuses; ``CREATE INDEX ASYNC`` returns a job id that ``sys.wait_for_job`` waits for.
So the DSQL branches of ``bank.adapters.ddl``, the migrations and the ch07 lab run here,
including a failed job and an index left invalid (``dsql_strict.next_index_job``).
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bank.adapters.ddl import IndexBuildFailed, create_index, is_dsql
from bank.adapters.errors import DatabaseError
from bank.adapters.lab import LabDatabase
from bank.adapters.orm import IDX_METADATA, IDX_TYPE
from bank.services import querylab
from bank.services.retry import RetryPolicy
from tests.conftest import engine_for

pytestmark = pytest.mark.skipif(os.environ.get("BANK_STRICT") != "1",
                                reason="the DSQL path runs in strict mode only (BANK_STRICT=1)")


def with_fault(server_url: str, schema: str, fault: str):
    """An engine on the test schema whose sessions' index jobs ``fault`` ('fail', 'invalid')."""
    url = make_url(server_url).update_query_dict(
        {"options": f"-csearch_path={schema} -cdsql_strict.next_index_job={fault}"})
    return engine_for(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")


def jobs(engine, name: str) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT status, job_type FROM sys.jobs "
            "WHERE object_name = current_schema() || '.' || :n ORDER BY start_time"
        ), {"n": name}).all()


def test_the_application_speaks_the_dsql_dialect_to_a_strict_server(engine):
    with engine.connect() as conn:
        assert is_dsql(conn)
        assert conn.execute(text("SHOW dsql_strict.enabled")).scalar() == "on"
        with pytest.raises(DatabaseError, match="0A000"):
            conn.execute(text("TRUNCATE accounts"))


def test_the_migrations_built_their_index_as_a_dsql_job(engine):
    """0004's CREATE INDEX ASYNC went through sys.jobs, and was waited for: completed."""
    assert ("completed", "INDEX_BUILD") in jobs(engine, IDX_TYPE.name)


def test_a_failed_index_job_is_a_named_error(server_url, test_schema, small_lab):
    failing = with_fault(server_url, test_schema.name, "fail")
    try:
        with failing.connect() as conn:
            conn.execute(text(f"DROP INDEX IF EXISTS {IDX_METADATA.name}"))
        with failing.connect() as conn, pytest.raises(IndexBuildFailed, match="failed"):
            create_index(conn, IDX_METADATA)
        assert jobs(failing, IDX_METADATA.name)[-1] == ("failed", "INDEX_BUILD")
        with failing.connect() as conn:  # the index is there, and not valid: unused
            valid = conn.execute(text("SELECT indisvalid FROM pg_index "
                                      "WHERE indexrelid = to_regclass(:n)"),
                                 {"n": IDX_METADATA.name}).scalar()
        assert valid is False
        # optimize finds it not valid and says so, instead of calling it built
        with pytest.raises(querylab.OptimizationFailed, match="not valid yet"):
            querylab.optimize(LabDatabase(failing), RetryPolicy(max_attempts=1))
    finally:
        with failing.connect() as conn:
            conn.execute(text(f"DROP INDEX IF EXISTS {IDX_METADATA.name}"))
        failing.dispose()


def test_an_index_still_building_is_not_taken_for_built(server_url, test_schema, small_lab):
    building = with_fault(server_url, test_schema.name, "invalid")
    try:
        with building.connect() as conn:
            conn.execute(text(f"DROP INDEX IF EXISTS {IDX_METADATA.name}"))
            job_id = conn.execute(text(
                f"CREATE INDEX ASYNC {IDX_METADATA.name} ON accounts7 (metadata_key)"
            )).scalar()
        assert jobs(building, IDX_METADATA.name)[-1][0] == "processing"
        with building.connect() as conn, pytest.raises(IndexBuildFailed, match="not valid yet"):
            create_index(conn, IDX_METADATA, if_not_exists=True)
        with building.connect() as conn:  # the job finishes when waited for
            assert conn.execute(text("CALL sys.wait_for_job(:j)"), {"j": job_id}).scalar()
            create_index(conn, IDX_METADATA, if_not_exists=True)  # valid now: nothing to do
    finally:
        with building.connect() as conn:
            conn.execute(text(f"DROP INDEX IF EXISTS {IDX_METADATA.name}"))
        building.dispose()


@pytest.fixture
def small_lab(engine):
    querylab.setup(LabDatabase(engine), 50, RetryPolicy())
    yield
    querylab.setup(LabDatabase(engine), 50, RetryPolicy())  # back to the schema's shape
