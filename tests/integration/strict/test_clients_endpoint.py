"""Every client sees DSQL through the local DSQL endpoint (issue 18, item 1).

psql, psycopg 2, psycopg 3 (sync and async) and asyncpg, each connected as a DSQL client
connects (``ThroughEndpoint``: TLS ``verify-full`` against the endpoint's CA for its DSQL
name, an IAM token minted by boto3 as the password, database ``postgres``), with no
client-side rewriting of their own:

- ``CREATE INDEX ASYNC`` answers a job id (the endpoint's rewrite, DSQL's tag), and after
  ``CALL sys.wait_for_job(id)`` the index exists and is valid;
- a write-write conflict between two sessions of that client: neither statement waits (each
  session sets ``lock_timeout``: a statement that waited for a row lock would fail with
  55P03 instead of answering), and the later COMMIT fails with 40001 ``(OC000)``.

The controls show what each would see without what it tests: sent straight to the server
behind the endpoint, ``CREATE INDEX ASYNC`` is PostgreSQL's 42601 syntax error for every
client (strict mode's module is loaded there, and cannot help: the parser refuses it before
any hook runs); with strict mode off, the second UPDATE waits and fails with 55P03.
"""

from __future__ import annotations

import re
import secrets

import pytest

from tests.integration.strict.cases import OCC_MESSAGE
from tests.integration.strict.clients import EVERY_CLIENT, Direct, ServerError, ThroughEndpoint

WAITING_IS_AN_ERROR = "SET lock_timeout = '5s'"
JOB_ID = re.compile(r"[a-z2-7]{26}")  # base32, as DSQL's


def text(rows):
    """Rows as text, whatever the client (psql answers text; the drivers, Python values)."""
    return [tuple("t" if v is True else "f" if v is False else str(v) for v in row)
            for row in rows]


@pytest.fixture
def ep_schema(dsql_endpoint):
    """A schema of its own for one test, made by the server's superuser behind the endpoint."""
    name = f"epc_{secrets.token_hex(4)}"
    with dsql_endpoint.endpoint.upstream.connect(autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield name
    with dsql_endpoint.endpoint.upstream.connect(autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture(params=EVERY_CLIENT, ids=lambda c: c.name)
def session(request, dsql_endpoint, ep_schema):
    """Open sessions of one client through the endpoint on the test's schema: ``session()``;
    ``session(where)`` elsewhere, ``session(where, options)`` with libpq options."""
    opened = []

    def open_session(where=None, options: str = ""):
        opened.append(request.param(where or ThroughEndpoint(dsql_endpoint), ep_schema, options))
        return opened[-1]

    yield open_session
    for one in opened:
        one.close()


def straight_to_the_server(dsql) -> Direct:
    """The server behind the endpoint, as its superuser, without the endpoint."""
    up = dsql.endpoint.upstream
    return Direct(up.port, up.database, user=up.user, password=up.password)


def test_create_index_async_answers_a_job_id_and_builds_the_index(session):
    """Without the endpoint's rewrite the CREATE INDEX ASYNC would fail with 42601 (the
    control below)."""
    client = session()
    client.run("CREATE TABLE t (id int PRIMARY KEY, v int)")
    tag, rows = client.run("CREATE INDEX ASYNC t_v ON t (v)")
    assert tag == ("" if client.name == "psql" else "CREATE INDEX")  # psql prints no tag
    (job,), = text(rows)                                              # for a row's answer
    assert JOB_ID.fullmatch(job), job
    assert text(client.run(f"CALL sys.wait_for_job('{job}')")[1]) == [("t",)]
    assert text(client.run(f"SELECT status FROM sys.jobs WHERE job_id = '{job}'")[1]) == [
        ("completed",)]
    assert text(client.run("SELECT i.indisvalid, i.indisready FROM pg_index i "
                           "WHERE i.indexrelid = 't_v'::regclass")[1]) == [("t", "t")]


def test_a_write_write_conflict_waits_for_nobody_and_fails_the_later_commit(session):
    """Were the second UPDATE to wait for the first's row lock, its lock_timeout would
    fail it with 55P03 (the control below); were the conflict PostgreSQL's own, the
    UPDATE would fail after the first COMMIT with ``could not serialize access``."""
    first, second = session(), session()
    first.run("CREATE TABLE acct (id int PRIMARY KEY, v int NOT NULL)")
    first.run("INSERT INTO acct VALUES (1, 100)")
    for one in (first, second):
        one.run(WAITING_IS_AN_ERROR)
        one.run("BEGIN")
    assert first.run("UPDATE acct SET v = v + 1 WHERE id = 1")[0] == "UPDATE 1"
    tag, rows = second.run("UPDATE acct SET v = v + 10 WHERE id = 1 RETURNING v")
    assert (tag, text(rows)) == ("UPDATE 1", [("110",)])  # at once, from its snapshot
    assert first.run("COMMIT")[0] == "COMMIT"
    with pytest.raises(ServerError) as conflict:
        second.run("COMMIT")
    assert conflict.value.sqlstate == "40001", conflict.value
    assert "(OC000)" in conflict.value.message and conflict.value.message == OCC_MESSAGE
    assert text(second.run("SELECT v FROM acct WHERE id = 1")[1]) == [("101",)]


def test_control_without_the_endpoint_create_index_async_is_a_syntax_error(session,
                                                                          dsql_endpoint):
    client = session(straight_to_the_server(dsql_endpoint))
    assert text(client.run("SELECT current_setting('dsql_strict.enabled')")[1]) == [("on",)]
    client.run("CREATE TABLE t (id int PRIMARY KEY, v int)")
    with pytest.raises(ServerError) as refused:
        client.run("CREATE INDEX ASYNC t_v ON t (v)")
    assert refused.value.sqlstate == "42601", refused.value


def test_control_without_strict_mode_the_second_update_waits(session, dsql_endpoint):
    """The lock_timeout guard catches a statement that waits: with strict mode off (a
    superuser's session, straight to the server) the second UPDATE waits for the first's
    row lock and fails with 55P03."""
    direct = straight_to_the_server(dsql_endpoint)
    first, second = session(direct), session(direct, "-c dsql_strict.enabled=off")
    first.run("CREATE TABLE acct (id int PRIMARY KEY, v int NOT NULL)")
    first.run("INSERT INTO acct VALUES (1, 100)")
    second.run("SET lock_timeout = '200ms'")
    first.run("BEGIN")
    first.run("UPDATE acct SET v = v + 1 WHERE id = 1")
    second.run("BEGIN")
    with pytest.raises(ServerError) as waited:
        second.run("UPDATE acct SET v = v + 10 WHERE id = 1")
    assert waited.value.sqlstate == "55P03", waited.value
    second.run("ROLLBACK")
    first.run("ROLLBACK")
