"""Optimistic concurrency as on DSQL: no statement waits for another transaction's row; the
loser learns at COMMIT (40001, ``OC000``). Every case runs for psycopg 3 (sync and async),
psycopg 2, asyncpg and psql, on every strict-mode server of the run.

Evidence: ``occ_conflict.json`` (``Dreamescaper/dsql-emulator``, recorded on a real cluster,
September 2026): two writers of one row both report ``UPDATE 1`` and one COMMIT fails with
40001; FOR UPDATE against a write likewise. The message is the one the DAT401 tutorial
recorded on DSQL (``change conflicts with another transaction, please retry: (OC000)``);
the emulator's recording has the shorter ``change conflicts with another transaction
(OC000)``, so the tests match ``(OC000)``, and the SQLSTATE.

No timing assertion: each session under test sets ``lock_timeout``, so a statement that
waited for a row lock would fail with 55P03 instead of answering.
"""

from __future__ import annotations

import subprocess

import pytest

from bank.kit.embedded import pg_bin
from tests.integration.strict.cases import OCC_MESSAGE
from tests.integration.strict.clients import ServerError

WAITING_IS_AN_ERROR = "SET lock_timeout = '5s'"


@pytest.fixture
def accounts(db):
    conn = db()
    conn.execute("CREATE TABLE occ_t (id int PRIMARY KEY, v int NOT NULL)")
    conn.execute("INSERT INTO occ_t VALUES (1, 100), (2, 200)")
    return conn


def _conflict_at_commit(session):
    with pytest.raises(ServerError) as info:
        session.run("COMMIT")
    assert info.value.sqlstate == "40001", info.value
    assert "(OC000)" in info.value.message and info.value.message == OCC_MESSAGE
    assert session.run("SELECT 1")[1] == [(1,)]  # the transaction is over, the session usable


def _values(conn):
    return dict(conn.execute("SELECT id, v FROM occ_t ORDER BY id").fetchall())


def test_a_write_write_conflict_waits_for_nobody_and_fails_at_commit(client, accounts, db):
    holder = db()
    holder.execute("BEGIN")
    holder.execute("UPDATE occ_t SET v = v + 1 WHERE id = 1")  # holds the row

    loser = client()
    loser.run(WAITING_IS_AN_ERROR)
    loser.run("BEGIN")
    # Answered at once, as DSQL answers it: the row count, the RETURNING row computed from
    # this transaction's snapshot.
    assert loser.run("UPDATE occ_t SET v = v + 10 WHERE id = 1 RETURNING v") == (
        "UPDATE 1", [(110,)])
    assert loser.run("UPDATE occ_t SET v = v + 10 WHERE id = 2")[0] == "UPDATE 1"
    assert loser.run("DELETE FROM occ_t WHERE id = 1")[0] == "DELETE 1"
    _conflict_at_commit(loser)

    holder.execute("COMMIT")  # the first writer was never disturbed
    assert _values(accounts) == {1: 101, 2: 200}  # nothing of the loser's was kept


def test_a_change_committed_after_the_snapshot_fails_the_commit_not_the_statement(
        client, accounts, db):
    loser = client()
    loser.run(WAITING_IS_AN_ERROR)
    loser.run("BEGIN")
    assert loser.run("SELECT v FROM occ_t WHERE id = 1")[1] == [(100,)]  # the snapshot
    db().execute("UPDATE occ_t SET v = 150 WHERE id = 1")  # another transaction, committed
    assert loser.run("UPDATE occ_t SET v = v + 1 WHERE id = 1 RETURNING v") == (
        "UPDATE 1", [(101,)])
    _conflict_at_commit(loser)
    assert _values(accounts) == {1: 150, 2: 200}


def test_for_update_joins_the_conflict_check(client, accounts, db):
    """A row locked FOR UPDATE that another transaction changed after this snapshot fails
    this COMMIT (occ_conflict.json#occ_for_update_vs_write)."""
    reader = client()
    reader.run(WAITING_IS_AN_ERROR)
    reader.run("BEGIN")
    reader.run("SELECT count(*) FROM occ_t")  # the snapshot
    db().execute("UPDATE occ_t SET v = 0 WHERE id = 2")
    assert reader.run("SELECT v FROM occ_t WHERE id = 2 FOR UPDATE") == ("SELECT 1", [(200,)])
    _conflict_at_commit(reader)


def test_a_write_to_a_row_locked_for_update_does_not_wait(client, accounts, db):
    """The lock holder came first: the writer does not wait for it. In autocommit its own
    commit fails at once (locally the later writer loses; on DSQL the first to commit
    wins, which here would be this statement)."""
    holder = db()
    holder.execute("BEGIN")
    holder.execute("SELECT v FROM occ_t WHERE id = 1 FOR UPDATE")
    writer = client()
    writer.run(WAITING_IS_AN_ERROR)
    with pytest.raises(ServerError) as info:
        writer.run("UPDATE occ_t SET v = 7 WHERE id = 1")
    assert (info.value.sqlstate, info.value.message) == ("40001", OCC_MESSAGE)
    holder.execute("COMMIT")
    assert _values(accounts) == {1: 100, 2: 200}


def test_writes_to_different_rows_do_not_conflict(client, accounts, db):
    """occ_conflict.json#occ_disjoint_writes: both commit."""
    other = db()
    other.execute("BEGIN")
    other.execute("UPDATE occ_t SET v = v + 1 WHERE id = 1")
    mine = client()
    mine.run(WAITING_IS_AN_ERROR)
    mine.run("BEGIN")
    assert mine.run("UPDATE occ_t SET v = v + 1 WHERE id = 2")[0] == "UPDATE 1"
    assert mine.run("COMMIT")[0] == "COMMIT"
    other.execute("COMMIT")
    assert _values(accounts) == {1: 101, 2: 201}


def test_a_referencing_insert_against_a_non_key_update_does_not_conflict(client, db):
    """occ_conflict.json#occ_fk_nonkey_update: the foreign key check's KEY SHARE lock and an
    update that keeps the key do not conflict; both commit."""
    conn = db()
    conn.execute("CREATE TABLE occ_p (id int PRIMARY KEY, name text)")
    conn.execute("CREATE TABLE occ_c (id int PRIMARY KEY, p int REFERENCES occ_p (id))")
    conn.execute("INSERT INTO occ_p VALUES (1, 'a')")
    other = db()
    other.execute("BEGIN")
    other.execute("UPDATE occ_p SET name = 'b' WHERE id = 1")
    mine = client()
    mine.run(WAITING_IS_AN_ERROR)
    mine.run("BEGIN")
    assert mine.run("INSERT INTO occ_c VALUES (1, 1)")[0] == "INSERT 0 1"
    assert mine.run("COMMIT")[0] == "COMMIT"
    other.execute("COMMIT")


def test_a_referencing_insert_against_a_delete_of_the_key_fails_at_commit(client, db):
    """occ_conflict.json#occ_fk_delete_insert: INSERT 0 1, then the COMMIT fails."""
    conn = db()
    conn.execute("CREATE TABLE occ_p (id int PRIMARY KEY)")
    conn.execute("CREATE TABLE occ_c (id int PRIMARY KEY, p int REFERENCES occ_p (id))")
    conn.execute("INSERT INTO occ_p VALUES (1)")
    other = db()
    other.execute("BEGIN")
    other.execute("DELETE FROM occ_p WHERE id = 1")
    mine = client()
    mine.run(WAITING_IS_AN_ERROR)
    mine.run("BEGIN")
    assert mine.run("INSERT INTO occ_c VALUES (1, 1)")[0] == "INSERT 0 1"
    _conflict_at_commit(mine)
    other.execute("COMMIT")


def test_snapshot_isolation_whatever_the_session_asks(client, accounts, db):
    """DSQL runs every transaction at snapshot isolation: a session whose default is READ
    COMMITTED (a client setting, which strict mode overrides) still reads one snapshot."""
    session = client("-c default_transaction_isolation=read\\ committed")
    assert session.run("SHOW transaction_isolation")[1] == [("repeatable read",)]
    session.run("BEGIN")
    assert session.run("SELECT v FROM occ_t WHERE id = 1")[1] == [(100,)]
    db().execute("UPDATE occ_t SET v = 1 WHERE id = 1")
    assert session.run("SELECT v FROM occ_t WHERE id = 1")[1] == [(100,)]  # same snapshot
    assert session.run("SHOW transaction_isolation")[1] == [("repeatable read",)]
    session.run("COMMIT")


def _psql(target, script: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", **({"PGOPTIONS": target.options} if target.options else {})}
    return subprocess.run(
        [pg_bin("psql"), "-X", "-h", "127.0.0.1", "-p", str(target.port), "-U", "postgres",
         "-d", target.dbname, "-v", "VERBOSITY=verbose"],
        input=script, capture_output=True, text=True, env=env, timeout=60)


def test_psql_a_write_write_conflict_fails_at_commit(target, schema, accounts, db):
    holder = db()
    holder.execute("BEGIN")
    holder.execute("UPDATE occ_t SET v = v + 1 WHERE id = 1")
    run = _psql(target, f"\\set VERBOSITY verbose\nSET search_path = {schema};\n"
                        f"{WAITING_IS_AN_ERROR};\nBEGIN;\n"
                        "UPDATE occ_t SET v = v + 10 WHERE id = 1 RETURNING v;\nCOMMIT;\n")
    holder.execute("COMMIT")
    assert "UPDATE 1" in run.stdout and " 110" in run.stdout, run.stdout + run.stderr
    assert f"ERROR:  40001: {OCC_MESSAGE}" in run.stderr, run.stderr
    assert "55P03" not in run.stderr
    assert _values(accounts) == {1: 101, 2: 200}
