"""The refusals of issue 18 (sequences, CACHE, wide keys, numeric, UNLISTEN *) and
``sys.current_session_id()``, for every client: psycopg 3 (sync and async), psycopg 2,
asyncpg and psql, on every strict-mode server of the run. Expected answers and their
sources: ``cases.py``."""

from __future__ import annotations

import subprocess

import pytest

from bank.kit.embedded import pg_bin
from tests.integration.strict.cases import ACCEPTED, REFUSED
from tests.integration.strict.clients import ServerError

NAMES = {"create_sequence_small_cache", "identity_small_cache", "create_sequence_as_decimal",
         "create_sequence_as_integer", "primary_key_nine_columns", "numeric_precision_1001",
         "unlisten_all"}
CASES = [c for c in REFUSED if c.name in NAMES]


def test_every_listed_case_exists():
    assert {c.name for c in CASES} == NAMES


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_refused_for_every_client(client, case):
    session = client()
    for sql in case.setup:
        session.run(sql)
    with pytest.raises(ServerError) as info:
        session.run(case.sql)
    assert (info.value.sqlstate, info.value.message) == (case.sqlstate, case.message)
    session.run("BEGIN")
    with pytest.raises(ServerError):
        session.run(case.sql)
    with pytest.raises(ServerError) as aborted:
        session.run("SELECT 1")
    assert aborted.value.sqlstate == "25P02"
    session.run("ROLLBACK")


def test_refused_for_psql(target, schema):
    script = "".join(f"{sql};\n" for case in CASES for sql in (*case.setup, case.sql))
    env = {"PATH": "/usr/bin:/bin", **({"PGOPTIONS": target.options} if target.options else {})}
    run = subprocess.run(
        [pg_bin("psql"), "-X", "-h", "127.0.0.1", "-p", str(target.port), "-U", "postgres",
         "-d", target.dbname, "-v", "VERBOSITY=verbose", "-c", f"SET search_path = {schema}",
         "-f", "-"], input=f"\\set VERBOSITY verbose\nSET search_path = {schema};\n{script}",
        capture_output=True, text=True, env=env, timeout=60)
    errors = [line for line in run.stderr.splitlines() if line.startswith("psql:")]
    got = [line.split("ERROR:  ", 1)[1] for line in errors if "ERROR:  " in line]
    assert got == [f"{c.sqlstate}: {c.message}" for c in CASES], run.stderr


def test_current_session_id(client):
    first, second = client(), client()
    (one,), = first.run("SELECT sys.current_session_id()")[1]
    assert isinstance(one, str) and len(one) == 26
    assert first.run("SELECT sys.current_session_id()")[1] == [(one,)]  # stable
    assert second.run("SELECT sys.current_session_id()")[1] != [(one,)]  # one per session
    assert any(c.name == "current_session_id" for c in ACCEPTED)
