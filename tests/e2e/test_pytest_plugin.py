"""The kit's pytest plugin in another project's suite (issue 18, item 5): a tiny project of
its own in a temp folder, with bank installed and nothing of bank's tests, run by pytest in
a process of its own with ``-p bank.kit.pytest_plugin``. Its test uses ``local_dsql_engine``
(the application's DSQL engine through the local endpoint) to create a table, build an index
with ``CREATE INDEX ASYNC``, and lose a write-write conflict at COMMIT."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from tests.conftest import ON_DSQL

pytestmark = pytest.mark.skipif(ON_DSQL, reason="local only on a cluster: the local endpoint")

USERS_TEST = '''
import pytest
from sqlalchemy import text

from bank.adapters.errors import TransactionConflict


def test_my_own_suite_gets_a_local_dsql(local_dsql, local_dsql_engine):
    engine = local_dsql_engine
    assert engine.dialect.name == "auroradsql" and engine.url.host == local_dsql.host
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as ddl:
        ddl.execute(text("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)"))
        job = ddl.execute(text("CREATE INDEX ASYNC accounts_balance ON accounts (balance)")
                          ).scalar_one()
        assert ddl.execute(text("CALL sys.wait_for_job(:job)"), {"job": job}).scalar_one()
        assert ddl.execute(text("SELECT indisvalid FROM pg_index "
                                "WHERE indexrelid = 'accounts_balance'::regclass")).scalar_one()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts VALUES (1, 100)"))
    with engine.connect() as first, engine.connect() as second:
        for conn in (first, second):
            conn.begin()
            conn.execute(text("SET lock_timeout = '5s'"))  # waiting for a row would fail
        first.execute(text("UPDATE accounts SET balance = balance - 10 WHERE id = 1"))
        moved = second.execute(text("UPDATE accounts SET balance = balance + 5 WHERE id = 1"))
        assert moved.rowcount == 1  # answered at once
        first.commit()
        with pytest.raises(TransactionConflict, match=r"\\(OC000\\)") as conflict:
            second.commit()
        assert conflict.value.sqlstate == "40001"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT balance FROM accounts")).scalar_one() == 90
'''


@pytest.fixture()
def users_project(tmp_path):
    """The project, and the environment its suite runs in: a schema of its own (BANK_SCHEMA,
    made and dropped here), none of this suite's settings."""
    from bank.kit.endpoint import Upstream

    (tmp_path / "test_users_app.py").write_text(USERS_TEST)
    schema = f"plugin_{secrets.token_hex(4)}"
    upstream = Upstream.embedded()
    with upstream.connect(autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PG", "AWS_", "PYTEST_")) and k not in (
               "DATABASE_URL", "CLUSTER_ENDPOINT", "BANK_DSQL_LOCAL", "BANK_STRICT")}
    env["BANK_SCHEMA"] = schema
    try:
        yield tmp_path, env
    finally:
        with upstream.connect(autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def pytest_run(project, env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *args, str(project)], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)


def test_another_projects_suite_gets_a_local_dsql_with_the_plugin(users_project):
    project, env = users_project
    done = pytest_run(project, env, "-p", "bank.kit.pytest_plugin")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout


def test_the_plugin_is_opt_in(users_project):
    """No pytest11 entry point: installing bank adds nothing to a project's pytest runs."""
    project, env = users_project
    done = pytest_run(project, env)
    assert done.returncode != 0
    assert "fixture 'local_dsql' not found" in done.stdout, done.stdout
