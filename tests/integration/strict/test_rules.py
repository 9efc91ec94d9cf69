"""Strict mode, rule by rule, against a real PostgreSQL with the dsql_strict module loaded.

Each test runs on the embedded wheel's PostgreSQL and on the PostgreSQL at 127.0.0.1:5432
(``system-pg``) when that one can load the module. The expected answers, and where each
comes from, are in ``cases.py``.
"""

from __future__ import annotations

import re
import subprocess

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, text
from sqlalchemy.schema import CreateIndex, Index

from bank.kit.embedded import pg_bin
from bank.kit.strict.client import StrictCursor, rewrite
from tests.integration.strict.cases import ACCEPTED, REFUSED, Case

JOB_ID = re.compile(r"^[a-z2-7]{25}[aeimquy4]$")
DDL_DML = "ddl and dml are not supported in the same transaction"
MULTI_DDL = "multiple ddl statements not supported in a transaction"
ROW_LIMIT = "transaction row limit exceeded"
ASYNC_VALUE_INDEX = "CREATE INDEX ASYNC baseline_idx_value ON baseline_idx (value)"


def _expect(conn: psycopg.Connection, sql: str, sqlstate: str, message: str | None = None):
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql)
    assert info.value.sqlstate == sqlstate, (sql, info.value.sqlstate, str(info.value))
    if message is not None:
        assert info.value.diag.message_primary == message
    return info.value


def _assert_aborted(conn: psycopg.Connection) -> None:
    assert conn.info.transaction_status == TransactionStatus.INERROR
    _expect(conn, "SELECT 1", "25P02")
    conn.execute("ROLLBACK")


def _assert_usable(conn: psycopg.Connection) -> None:
    assert conn.info.transaction_status == TransactionStatus.IDLE
    assert conn.execute("SELECT 1").fetchone() == (1,)


def _setup(conn: psycopg.Connection, case: Case) -> None:
    for sql in case.setup:
        conn.execute(sql)


# --- the rule table -------------------------------------------------------------------------

def _conn(db, case: Case) -> psycopg.Connection:
    return db(cursor_factory=StrictCursor) if case.client else db()


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.name)
def test_refused(db, case: Case):
    conn = _conn(db, case)
    _setup(conn, case)
    message = None if case.guessed else case.message
    _expect(conn, case.sql, case.sqlstate, message)  # autocommit: refused ...
    _assert_usable(conn)  # ... and nothing is left aborted
    if case.in_txn:
        conn.execute("BEGIN")
        _expect(conn, case.sql, case.sqlstate, message)  # in a transaction: refused ...
        _assert_aborted(conn)  # ... and the transaction is aborted (25P02)


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda c: c.name)
def test_accepted(db, case: Case):
    conn = _conn(db, case)
    if conn.info.server_version < case.min_server * 10000:
        pytest.skip(f"PostgreSQL {conn.info.server_version // 10000} cannot parse this "
                    f"(needs {case.min_server}); DSQL is PostgreSQL 16")
    _setup(conn, case)
    for sql in (case.sql if isinstance(case.sql, tuple) else (case.sql,)):
        conn.execute(sql)
    _assert_usable(conn)


# --- one DDL per transaction, never beside DML (transaction.json, multi_statement.json) ------

def test_two_ddl_in_one_transaction(db):
    conn = db()
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE baseline_txn_a (id int)")
    _expect(conn, "CREATE TABLE baseline_txn_b (id int)", "0A000", MULTI_DDL)
    _assert_aborted(conn)


def test_ddl_then_dml(db):
    conn = db()
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE baseline_txn_c (id int)")
    _expect(conn, "INSERT INTO baseline_txn_c (id) VALUES (1)", "0A000", DDL_DML)
    _assert_aborted(conn)


def test_dml_then_ddl(db):
    conn = db()
    conn.execute("CREATE TABLE baseline_txn_d (id int)")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO baseline_txn_d (id) VALUES (1)")
    _expect(conn, "CREATE TABLE baseline_txn_e (id int)", "0A000", DDL_DML)
    _assert_aborted(conn)


def test_multi_statement_two_ddl(db):
    conn = db()
    _expect(conn, "CREATE TABLE baseline_multi_a (id int); CREATE TABLE baseline_multi_b (id int)",
            "0A000", MULTI_DDL)
    _assert_usable(conn)
    assert conn.execute("SELECT to_regclass('baseline_multi_a')").fetchone() == (None,)


def test_multi_statement_ddl_then_dml(db):
    conn = db()
    _expect(conn, "CREATE TABLE baseline_multi_c (id int); "
                  "INSERT INTO baseline_multi_c (id) VALUES (1)", "0A000", DDL_DML)
    _assert_usable(conn)


def test_each_autocommit_statement_is_its_own_transaction(db):
    conn = db()
    conn.execute("CREATE TABLE baseline_auto (id int)")
    conn.execute("INSERT INTO baseline_auto VALUES (1)")
    conn.execute("CREATE VIEW baseline_auto_v AS SELECT id FROM baseline_auto")
    assert conn.execute("SELECT count(*) FROM baseline_auto_v").fetchone() == (1,)


# --- the row limit (transaction.json row_cap*) ----------------------------------------------

def test_row_cap_boundary(db):
    conn = db()
    conn.execute("CREATE TABLE baseline_bulk (id int)")
    conn.execute("BEGIN")
    cur = conn.execute("INSERT INTO baseline_bulk SELECT generate_series(1, 3000)")
    assert cur.rowcount == 3000
    conn.execute("SELECT 1")
    conn.execute("ROLLBACK")


def test_row_cap_in_transaction_aborts_and_discards(db):
    conn = db()
    conn.execute("CREATE TABLE baseline_bulk (id int)")
    conn.execute("BEGIN")
    _expect(conn, "INSERT INTO baseline_bulk SELECT generate_series(1, 3001)", "54000", ROW_LIMIT)
    _assert_aborted(conn)
    assert conn.execute("SELECT count(*) FROM baseline_bulk").fetchone() == (0,)


def test_row_cap_implicit(db):
    conn = db()
    conn.execute("CREATE TABLE baseline_implicit_bulk (id int)")
    _expect(conn, "INSERT INTO baseline_implicit_bulk SELECT generate_series(1, 3001)", "54000",
            ROW_LIMIT)
    _assert_usable(conn)
    assert conn.execute("SELECT count(*) FROM baseline_implicit_bulk").fetchone() == (0,)


def test_row_cap_counts_every_statement_of_the_transaction(db):
    conn = db()
    conn.execute("CREATE TABLE baseline_bulk (id int)")
    conn.execute("INSERT INTO baseline_bulk SELECT generate_series(1, 2000)")  # committed
    conn.execute("BEGIN")
    conn.execute("UPDATE baseline_bulk SET id = id + 1")  # 2000
    conn.execute("DELETE FROM baseline_bulk WHERE id <= 1000")  # 999: 2999 in all
    conn.execute("INSERT INTO baseline_bulk VALUES (0)")  # 3000
    _expect(conn, "INSERT INTO baseline_bulk VALUES (0)", "54000", ROW_LIMIT)
    _assert_aborted(conn)
    conn.execute("BEGIN")  # a new transaction starts from zero
    conn.execute("INSERT INTO baseline_bulk SELECT generate_series(1, 3000)")
    conn.execute("COMMIT")


def test_row_cap_with_returning(db):
    conn = db()
    conn.execute("CREATE TABLE baseline_bulk (id int)")
    _expect(conn, "INSERT INTO baseline_bulk SELECT generate_series(1, 3001) RETURNING id",
            "54000", ROW_LIMIT)
    cur = conn.execute("INSERT INTO baseline_bulk SELECT generate_series(1, 3000) RETURNING id")
    assert len(cur.fetchall()) == 3000


def test_row_cap_counts_writable_ctes(db):
    conn = db()
    conn.execute("CREATE TABLE baseline_bulk (id int)")
    conn.execute("CREATE TABLE baseline_bulk2 (id int)")
    _expect(conn, "WITH i AS (INSERT INTO baseline_bulk SELECT generate_series(1, 3001) "
                  "RETURNING id) SELECT count(*) FROM i", "54000", ROW_LIMIT)
    _expect(conn, "WITH i AS (INSERT INTO baseline_bulk SELECT generate_series(1, 3001)) "
                  "SELECT 1", "54000", ROW_LIMIT)
    conn.execute("INSERT INTO baseline_bulk SELECT generate_series(1, 2000)")
    # 2000 deleted by the CTE + 2000 inserted by the statement
    _expect(conn, "WITH d AS (DELETE FROM baseline_bulk RETURNING id) "
                  "INSERT INTO baseline_bulk2 SELECT id FROM d", "54000", ROW_LIMIT)
    conn.execute("WITH d AS (DELETE FROM baseline_bulk WHERE id <= 1500 RETURNING id) "
                 "INSERT INTO baseline_bulk2 SELECT id FROM d")  # 3000: accepted
    assert conn.execute("SELECT count(*) FROM baseline_bulk2").fetchone() == (1500,)


def test_row_cap_counts_copy_from(db):
    conn = db()
    conn.execute("CREATE TABLE baseline_copy (id int)")
    with conn.cursor() as cur:
        with pytest.raises(psycopg.Error) as info:
            with cur.copy("COPY baseline_copy (id) FROM STDIN") as copy:
                for i in range(3001):
                    copy.write_row((i,))
    assert info.value.sqlstate == "54000"
    with conn.cursor() as cur:
        with cur.copy("COPY baseline_copy (id) FROM STDIN") as copy:
            for i in range(3000):
                copy.write_row((i,))
    assert conn.execute("SELECT count(*) FROM baseline_copy").fetchone() == (3000,)


def test_row_limit_is_a_setting(db):
    conn = db()
    conn.execute("CREATE TABLE baseline_bulk (id int)")
    conn.execute("SET dsql_strict.row_limit = 10")
    _expect(conn, "INSERT INTO baseline_bulk SELECT generate_series(1, 11)", "54000", ROW_LIMIT)
    conn.execute("INSERT INTO baseline_bulk SELECT generate_series(1, 10)")


def test_explain_without_analyze_modifies_nothing_and_counts_nothing(db):
    conn = db()
    conn.execute("CREATE TABLE baseline_bulk (id int)")
    conn.execute("BEGIN")
    conn.execute("CREATE VIEW baseline_bulk_v AS SELECT 1 AS x")
    conn.execute("EXPLAIN INSERT INTO baseline_bulk SELECT generate_series(1, 5000)")
    conn.execute("COMMIT")


# --- who may turn it off; the emulation's own objects ---------------------------------------

def test_superuser_setup_can_turn_it_off(db):
    conn = db()
    conn.execute("CREATE TABLE baseline_parent (id int)")
    conn.execute("SET dsql_strict.enabled = off")
    conn.execute("TRUNCATE baseline_parent")
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE baseline_x (id int)")
    conn.execute("INSERT INTO baseline_x VALUES (1)")
    conn.execute("CREATE INDEX baseline_x_id ON baseline_x (id)")
    conn.execute("COMMIT")
    conn.execute("RESET dsql_strict.enabled")
    _expect(conn, "TRUNCATE baseline_parent", "0A000", "unsupported statement: Truncate")


def test_a_plain_role_cannot_turn_it_off(db, schema):
    conn = db()
    conn.execute("DROP ROLE IF EXISTS baseline_app")
    conn.execute("CREATE ROLE baseline_app")
    try:
        conn.execute("SET ROLE baseline_app")
        _expect(conn, "SET dsql_strict.enabled = off", "42501")
        conn.execute("RESET ROLE")
    finally:
        conn.execute("DROP ROLE baseline_app")


def test_raw_psql_client_is_refused_too(target, schema):
    env = {"PGOPTIONS": target.options} if target.options else {}
    run = subprocess.run(
        [pg_bin("psql"), "-X", "-h", "127.0.0.1", "-p", str(target.port), "-U", "postgres",
         "-d", target.dbname, "-v", "ON_ERROR_STOP=1",
         "-c", f"CREATE TABLE {schema}.p (id int)", "-c", f"TRUNCATE {schema}.p"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env}, timeout=60,
    )
    assert run.returncode != 0
    assert "unsupported statement: Truncate" in run.stderr


def test_settings_validate_the_fault_name(db):
    conn = db()
    _expect(conn, "SET dsql_strict.next_index_job = 'explode'", "22023")
    conn.execute("SET dsql_strict.next_index_job = 'fail'")
    conn.execute("RESET dsql_strict.next_index_job")


# --- CREATE INDEX ASYNC: raw psycopg with StrictCursor ---------------------------------------

def _index(conn, name):
    return conn.execute(
        "SELECT i.indexrelid::oid, i.indisvalid FROM pg_index i WHERE i.indexrelid = "
        "to_regclass(%s)", [name]).fetchone()


def _job(conn, job_id):
    return conn.execute(
        "SELECT status, job_type, class_id, object_id, object_name, details FROM sys.jobs "
        "WHERE job_id = %s", [job_id]).fetchone()


def test_rewrite_touches_only_async_ddl():
    plain = "SELECT 'CREATE INDEX ASYNC' FROM t"
    assert rewrite(plain) is plain
    assert rewrite("INSERT INTO t VALUES (1)") == "INSERT INTO t VALUES (1)"
    assert rewrite("create unique index async if not exists i on t (a) include (b);") == (
        "SELECT job_id FROM sys.create_index_async("
        "'create unique index if not exists i on t (a) include (b)')")
    assert rewrite("CREATE INDEX ASYNC i ON t (lower(v)) WHERE v <> ''") == (
        "SELECT job_id FROM sys.create_index_async("
        "'CREATE INDEX i ON t (lower(v)) WHERE v <> ''''')")
    assert rewrite("ALTER TABLE ASYNC t VALIDATE CONSTRAINT c") == (
        "SELECT job_id FROM sys.alter_table_async('ALTER TABLE t VALIDATE CONSTRAINT c')")
    assert rewrite("ALTER TABLE t ADD COLUMN c text") == "ALTER TABLE t ADD COLUMN c text"
    # several statements in one query: each is rewritten on its own (multi_statement.json)
    assert rewrite("CREATE TABLE d (id int); CREATE INDEX ASYNC i ON d (id);") == (
        "CREATE TABLE d (id int); SELECT job_id FROM sys.create_index_async("
        "'CREATE INDEX i ON d (id)')")
    assert rewrite("BEGIN; ALTER TABLE ASYNC t VALIDATE CONSTRAINT c; COMMIT") == (
        "BEGIN; SELECT job_id FROM sys.alter_table_async('ALTER TABLE t VALIDATE CONSTRAINT c'); "
        "COMMIT")
    # a ';' in a string, a dollar quote or a comment does not end a statement
    quoted = "SELECT ';'; SELECT $$a;b$$; SELECT E'\\';x' -- c;d\n; /* e;f */ SELECT 1"
    assert rewrite(quoted) is quoted
    assert rewrite("CREATE INDEX ASYNC i ON t (v) WHERE v <> ';'") == (
        "SELECT job_id FROM sys.create_index_async('CREATE INDEX i ON t (v) WHERE v <> '';''')")


def test_rewritten_statements_report_dsql_command_tags(db):
    conn = db(cursor_factory=StrictCursor)
    conn.execute("CREATE TABLE baseline_multi (id int PRIMARY KEY, a int)")
    cur = conn.execute("CREATE INDEX ASYNC baseline_multi_a ON baseline_multi (a)")
    assert cur.statusmessage == "CREATE INDEX"  # DSQL's tag, not the rewrite's SELECT 1
    cur = conn.execute("BEGIN; CREATE INDEX ASYNC baseline_multi_id_a ON baseline_multi (id, a); "
                       "COMMIT")
    tags = [cur.statusmessage]
    while cur.nextset():
        tags.append(cur.statusmessage)
    assert tags == ["BEGIN", "CREATE INDEX", "COMMIT"]
    assert conn.execute("SELECT 1").statusmessage == "SELECT 1"


def test_left_lateral_rule_scope(db):
    """The LEFT JOIN LATERAL defect is emulated where the recording shows it: an outer column
    number n read from the subquery's table, whose column n has another type."""
    conn = db()
    conn.execute("CREATE TABLE baseline_lat_a (id bigint PRIMARY KEY, t text)")
    conn.execute("CREATE TABLE baseline_lat_b (id bigint PRIMARY KEY, a_id bigint)")
    conn.execute("INSERT INTO baseline_lat_a VALUES (1, 'a')")
    left = "SELECT x.v FROM baseline_lat_a p LEFT JOIN LATERAL "
    _expect(conn, left + "(SELECT p.t AS v FROM baseline_lat_b c) AS x ON TRUE", "42804",
            "attribute 2 of type baseline_lat_b has wrong type")
    for sql in (
        # column 1 is bigint in both tables
        left + "(SELECT p.id AS v FROM baseline_lat_b c) AS x ON TRUE",
        # no outer reference in the output
        left + "(SELECT c.id AS v FROM baseline_lat_b c WHERE c.a_id = p.id) AS x ON TRUE",
        # an aggregate: a subquery PostgreSQL does not pull up
        left + "(SELECT p.t || count(*) AS v FROM baseline_lat_b c) AS x ON TRUE",
        # the same subquery under CROSS JOIN LATERAL
        "SELECT x.v FROM baseline_lat_a p CROSS JOIN LATERAL "
        "(SELECT p.t AS v FROM baseline_lat_b c) AS x",
    ):
        conn.execute(sql)


def test_create_index_async_returns_a_job(db, schema):
    conn = db(cursor_factory=StrictCursor)
    conn.execute("CREATE TABLE baseline_idx (id uuid PRIMARY KEY, value text)")
    cur = conn.execute("CREATE UNIQUE INDEX ASYNC IF NOT EXISTS baseline_idx_value_async "
                       "ON baseline_idx (value) INCLUDE (id)")
    assert [d.name for d in cur.description] == ["job_id"]
    rows = cur.fetchall()
    assert len(rows) == 1 and JOB_ID.match(rows[0][0]), rows
    job_id = rows[0][0]
    oid, valid = _index(conn, "baseline_idx_value_async")
    assert valid is True
    assert _job(conn, job_id) == ("completed", "INDEX_BUILD", 1259, oid,
                                  f"{schema}.baseline_idx_value_async", None)
    assert conn.execute("CALL sys.wait_for_job(%s)", [job_id]).fetchone() == (True,)
    # IF NOT EXISTS on an existing index: no new job
    cur = conn.execute("CREATE INDEX ASYNC IF NOT EXISTS baseline_idx_value_async "
                       "ON baseline_idx (value)")
    assert cur.fetchall() == [(None,)]
    # unnamed: the server names it, as DSQL does
    job = conn.execute("CREATE INDEX ASYNC ON baseline_idx (value)").fetchone()[0]
    assert _job(conn, job)[4] == f"{schema}.baseline_idx_value_idx"


def test_create_index_async_is_the_transactions_one_ddl(db):
    conn = db(cursor_factory=StrictCursor)
    conn.execute("CREATE TABLE baseline_multi (id int PRIMARY KEY, a int)")
    conn.execute("BEGIN")
    conn.execute("CREATE INDEX ASYNC baseline_multi_idx ON baseline_multi (a)")
    conn.execute("COMMIT")  # one DDL in an explicit transaction (multi_async_index_in_txn)
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE baseline_multi_d (id int)")
    _expect(conn, "CREATE INDEX ASYNC baseline_multi_d_idx ON baseline_multi_d (id)", "0A000",
            MULTI_DDL)
    _assert_aborted(conn)
    conn.execute("BEGIN")
    conn.execute("INSERT INTO baseline_multi VALUES (1, 1)")
    _expect(conn, "CREATE INDEX ASYNC baseline_multi_idx2 ON baseline_multi (a)", "0A000",
            DDL_DML)
    _assert_aborted(conn)
    assert conn.execute("SELECT count(*) FROM sys.jobs WHERE object_name LIKE "
                        "'%baseline_multi_d_idx' OR object_name LIKE '%idx2'").fetchone() == (0,)


def test_create_index_async_qualified_name_is_a_syntax_error(db):
    conn = db(cursor_factory=StrictCursor)
    conn.execute("CREATE TABLE baseline_idx (id int PRIMARY KEY, value text)")
    _expect(conn, "CREATE INDEX ASYNC public.baseline_qualified_idx ON baseline_idx (value)",
            "42601", 'syntax error at or near "."')


def test_index_job_fault_fail(db):
    conn = db(cursor_factory=StrictCursor)
    conn.execute("CREATE TABLE baseline_idx (id int PRIMARY KEY, value text)")
    conn.execute("INSERT INTO baseline_idx SELECT g, 'v' || g FROM generate_series(1, 500) g")
    conn.execute("SET dsql_strict.next_index_job = 'fail'")
    job = conn.execute(ASYNC_VALUE_INDEX).fetchone()[0]
    assert JOB_ID.match(job)
    assert conn.execute("SHOW dsql_strict.next_index_job").fetchone() == ("",)  # consumed
    status = _job(conn, job)
    assert status[0] == "failed" and status[1] == "INDEX_BUILD" and status[5]
    assert _index(conn, "baseline_idx_value")[1] is False
    assert conn.execute("CALL sys.wait_for_job(%s)", [job]).fetchone() == (False,)
    conn.execute("SET enable_seqscan = off")
    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN SELECT id FROM baseline_idx WHERE value = 'v7'").fetchall())
    assert "baseline_idx_value" not in plan
    # the next job is healthy again
    job2 = conn.execute("CREATE INDEX ASYNC baseline_idx_value2 ON baseline_idx (value)").fetchone()
    assert _job(conn, job2[0])[0] == "completed"


def test_index_job_fault_invalid_then_wait(db):
    conn = db(cursor_factory=StrictCursor)
    conn.execute("CREATE TABLE baseline_idx (id int PRIMARY KEY, value text)")
    conn.execute("SET dsql_strict.next_index_job = 'invalid'")
    job = conn.execute(ASYNC_VALUE_INDEX).fetchone()[0]
    assert _job(conn, job)[0] == "processing"
    assert _index(conn, "baseline_idx_value")[1] is False
    assert conn.execute("CALL sys.wait_for_job(%s)", [job]).fetchone() == (True,)
    assert _job(conn, job)[0] == "completed"
    assert _index(conn, "baseline_idx_value")[1] is True


def test_wait_for_job_on_an_unknown_but_well_formed_id(db):
    conn = db()
    _expect(conn, "CALL sys.wait_for_job('aaaaaaaaaaaaaaaaaaaaaaaaaa')", "42704")


def test_alter_table_async_validate_constraint(db):
    conn = db(cursor_factory=StrictCursor)
    conn.execute("CREATE TABLE baseline_parent (id uuid PRIMARY KEY)")
    conn.execute("CREATE TABLE baseline_alter_fk (id int PRIMARY KEY, parent_id uuid)")
    conn.execute("ALTER TABLE baseline_alter_fk ADD CONSTRAINT alter_fk FOREIGN KEY (parent_id) "
                 "REFERENCES baseline_parent (id) NOT VALID")
    job = conn.execute("ALTER TABLE ASYNC baseline_alter_fk VALIDATE CONSTRAINT alter_fk"
                       ).fetchone()[0]
    assert JOB_ID.match(job)
    assert conn.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'alter_fk'"
                        ).fetchone() == (True,)
    assert conn.execute("CALL sys.wait_for_job(%s)", [job]).fetchone() == (True,)


# --- CREATE INDEX ASYNC through SQLAlchemy ---------------------------------------------------

def _engine(target, schema, dialect):
    options = f"{target.options} -c search_path={schema},public".strip()
    extra = {"use_native_hstore": False} if dialect == "postgresql+psycopg" else {}
    return create_engine(target.url(dialect), connect_args={"cursor_factory": StrictCursor,
                                                            "options": options}, **extra)


def test_sqlalchemy_auroradsql_dialect_create_index(target, schema):
    from bank.adapters.ddl import create_index

    engine = _engine(target, schema, "auroradsql+psycopg")
    metadata = MetaData()
    accounts = Table("accounts_strict", metadata, Column("id", Integer, primary_key=True),
                     Column("kind", String(10)), Column("region", String(10)),
                     Column("code", String(10)))
    Index("ix_accounts_strict_code", accounts.c.code)
    try:
        metadata.create_all(engine)  # CREATE TABLE, CREATE INDEX ASYNC: one commit each
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM sys.jobs WHERE object_name = "
                                     f"'{schema}.ix_accounts_strict_code'")).scalar() == 1
        covering = Index("ix_accounts_strict_kind", accounts.c.kind,
                         auroradsql_include=["region"])
        with engine.connect() as conn:
            sql = str(CreateIndex(covering).compile(dialect=engine.dialect))
            assert sql.startswith("CREATE INDEX ASYNC") and "INCLUDE (region)" in sql
            job = conn.execute(CreateIndex(covering)).scalar()
            assert JOB_ID.match(job)
            conn.commit()
            status = conn.execute(text("SELECT status, object_name FROM sys.jobs "
                                       "WHERE job_id = :j"), {"j": job}).one()
            assert status == ("completed", f"{schema}.ix_accounts_strict_kind")
            assert conn.execute(text("CALL sys.wait_for_job(:j)"), {"j": job}).scalar() is True
            conn.commit()
        second = Index("ix_accounts_strict_region", accounts.c.region)
        with engine.connect() as conn:
            create_index(conn, second, if_not_exists=True)  # bank.adapters.ddl waits for the job
            conn.commit()
            create_index(conn, second, if_not_exists=True)  # exists: no job, index valid
            conn.commit()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                     "to_regclass('ix_accounts_strict_region')")).scalar()
    finally:
        engine.dispose()


def test_sqlalchemy_postgresql_dialect_is_refused_plain_create_index(target, schema):
    engine = _engine(target, schema, "postgresql+psycopg")
    metadata = MetaData()
    t = Table("plain_strict", metadata, Column("id", Integer, primary_key=True),
              Column("v", String(10)))
    try:
        with engine.connect() as conn:
            conn.execute(text(f"CREATE TABLE {schema}.plain_strict (id int PRIMARY KEY, v text)"))
            conn.commit()
            with pytest.raises(Exception) as info:
                conn.execute(CreateIndex(Index("ix_plain_strict_v", t.c.v)))
            assert getattr(info.value.orig, "sqlstate", None) == "0A000"
            conn.rollback()
            job = conn.execute(text("CREATE INDEX ASYNC ix_plain_strict_v ON plain_strict (v)")
                               ).scalar()
            assert JOB_ID.match(job)
            conn.commit()
    finally:
        engine.dispose()
