"""The local DSQL endpoint (``bank.kit.endpoint``): DSQL's connection path, run locally.

Real parts only: the endpoint on 127.0.0.1 in front of the embedded server, TLS by
OpenSSL (libpq's, psql's, Python's), tokens minted by boto3 with fake credentials, and the
application's own DSQL engine (``make_engine``: ``create_dsql_engine``, a token per
connection, ``verify-full``) pointed at it by the one setting ``BANK_DSQL_LOCAL``.

libpq does not keep the SQLSTATE of a refused connection, only its text; the refusals'
SQLSTATEs are read by a small client of the protocol (``login``).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import ssl
import struct
import subprocess
import time
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import text

from bank.adapters.database import DSQL_ROOT_CERTS
from bank.kit.endpoint import wire
from tests.conftest import Schema
from tests.integration.psql import system_psql, wheel_psql_with_tls

ARN = "arn:aws:iam::111122223333:role/bank-endpoint-test"
ACCESS_DENIED = "unable to accept connection, access denied"


# -- a client of the protocol, to read a refusal's fields ------------------------------------

def login(dsql, user: str, password: str, *, tls: bool = True, sni: bool = True,
          direct: bool = True, database: str = "postgres") -> dict[str, str]:
    """Log in through the endpoint; the ErrorResponse's fields, or {} when it let us in."""
    sock = socket.create_connection(("127.0.0.1", dsql.port), timeout=10)
    try:
        if tls:
            if not direct:
                sock.sendall(struct.pack("!ii", 8, wire.SSL_REQUEST))
                assert sock.recv(1) == b"S"
            context = ssl.create_default_context(cafile=str(dsql.ca_file))
            context.set_alpn_protocols(["postgresql"])
            context.check_hostname = sni
            sock = context.wrap_socket(sock, server_hostname=dsql.host if sni else None)
        sock.sendall(wire.startup_message({"user": user, "database": database}))
        framer = wire.Framer()
        while True:
            data = sock.recv(65536)
            if not data:
                raise AssertionError("closed without an answer")
            for kind, raw in framer.feed(data):
                if kind == ord("E"):
                    return wire.error_fields(raw)
                if kind == ord("R") and struct.unpack_from("!i", raw, 5)[0] == wire.AUTH_CLEARTEXT:
                    sock.sendall(wire.message(b"p", wire.cstring(password)))
                if kind == ord("Z"):
                    sock.sendall(wire.message(b"X"))
                    return {}
    finally:
        sock.close()


@pytest.fixture()
def superuser(dsql_endpoint):
    """The embedded server's superuser, directly (set-up and inspection only)."""
    with dsql_endpoint.endpoint.upstream.connect(autocommit=True) as conn:
        yield conn


@pytest.fixture()
def schema(superuser):
    name = f"ep_{secrets.token_hex(4)}"
    superuser.execute(f"CREATE SCHEMA {name}")
    yield name
    superuser.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture()
def role(superuser):
    name = f"ep_role_{secrets.token_hex(4)}"
    superuser.execute(f"CREATE ROLE {name} WITH LOGIN")
    yield name
    superuser.execute("DELETE FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s", [name])
    superuser.execute(f"DROP ROLE {name}")


# -- the application's DSQL code path, unchanged ----------------------------------------------

def test_the_applications_dsql_engine_runs_unchanged_through_the_endpoint(dsql_environment):
    from bank.adapters import database
    from bank.adapters.settings import Settings
    from bank.handlers import ch03, ch05

    dsql = dsql_environment
    schema = Schema(None, prefix="bank_ep")  # the DSQL path: make_engine, Alembic's env.py
    assert schema.admin.dialect.name == "auroradsql"
    schema.create()  # every migration, its CREATE INDEX ASYNC waited for, through the endpoint
    try:
        settings = dataclasses.replace(Settings.from_env(), schema=schema.name)
        assert settings.is_dsql and settings.dsql_local == dsql.folder
        engine = database.make_engine(settings)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_schema(), current_database(), "
                                     "current_setting('dsql_strict.enabled')")).one() == (
                schema.name, "bank", "on")
            jobs = conn.execute(text("SELECT status FROM sys.jobs WHERE object_name LIKE :s"),
                                {"s": f"{schema.name}.%"}).scalars().all()
        assert jobs and set(jobs) == {"completed"}, jobs  # the migrations' async index jobs
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO accounts (id, balance) VALUES (1, 100), (2, 50)"))
        database.install_engine(engine)  # the handlers' process-wide engine (the fixture
        assert ch03.handler({"id": 1}) == {"balance": "100.000000"}  # forgets it after)
        moved = ch05.handler({"payer_id": 1, "payee_id": 2, "amount": "10"})
        assert moved["payer_balance"] == "90.000000", moved
        assert ch03.handler({"id": 2}) == {"balance": "60.000000"}
    finally:
        schema.drop()


# -- psql, and any other client ----------------------------------------------------------------

PSQLS = {"wheel": (wheel_psql_with_tls, "no libpq with TLS in psycopg-binary's libraries (Linux)"),
         "system": (system_psql, "no psql 14 or later on the PATH")}


def psql(dsql, *commands: str, which: str = "wheel", negotiation: str = "postgres",
         user: str = "admin") -> list[str]:
    find, missing = PSQLS[which]
    found = find()
    if found is None:
        pytest.skip(missing)
    program, extra = found
    conninfo = (f"host={dsql.host} hostaddr=127.0.0.1 port={dsql.port} user={user} "
                f"dbname=postgres sslmode=verify-full sslrootcert={dsql.ca_file} "
                "gssencmode=disable")
    if negotiation != "postgres":
        conninfo += f" sslnegotiation={negotiation}"  # libpq 17 or later
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(extra, PGPASSWORD=dsql.token(user))
    args = [program, "-X", "-At", "-v", "ON_ERROR_STOP=1", conninfo]
    for command in commands:
        args += ["-c", command]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("which, negotiation", [("wheel", "postgres"), ("wheel", "direct"),
                                                ("system", "postgres")])
def test_psql_connects_with_a_token_and_creates_an_index_async(dsql_endpoint, schema, superuser,
                                                               which, negotiation):
    out = psql(dsql_endpoint, "SELECT current_user, current_setting('dsql_strict.enabled')",
               f"CREATE TABLE {schema}.t (id int PRIMARY KEY, v int)",
               f"CREATE INDEX ASYNC t_v ON {schema}.t (v)", which=which,
               negotiation=negotiation)
    assert out[0] == "postgres|on"
    job = out[-1]
    assert len(job) == 26 and job.isalnum() and job.islower(), out
    assert psql(dsql_endpoint, f"CALL sys.wait_for_job('{job}')", which=which) == ["t"]
    assert superuser.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                             "to_regclass(%s)", [f"{schema}.t_v"]).fetchone() == (True,)


def test_a_raw_psycopg_connection_gets_dsqls_async_ddl_and_command_tags(dsql_endpoint, schema,
                                                                        superuser):
    with dsql_endpoint.connect() as conn:
        conn.execute(f"CREATE TABLE {schema}.t (id int PRIMARY KEY, v int)")
        # a named prepared statement: the Parse message is rewritten, its tag mapped
        cur = conn.execute(f"CREATE UNIQUE INDEX ASYNC t_v ON {schema}.t (v)", prepare=True)
        assert cur.statusmessage == "CREATE INDEX"
        (job,) = cur.fetchone()
        assert cur.description[0].name == "job_id" and len(job) == 26
        assert conn.execute("CALL sys.wait_for_job(%s)", [job]).fetchone() == (True,)
        # several statements in one simple Query, each rewritten on its own
        conn.execute(f"ALTER TABLE {schema}.t ADD CONSTRAINT v_pos CHECK (v > 0) NOT VALID")
        cur = conn.cursor()
        cur.execute(f"SELECT 'a;b'; ALTER TABLE ASYNC {schema}.t VALIDATE CONSTRAINT v_pos")
        assert (cur.statusmessage, cur.fetchone()) == ("SELECT 1", ("a;b",))
        assert cur.nextset() and cur.statusmessage == "ALTER TABLE" and cur.fetchone()[0]
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="multiple ddl"):
            cur.execute(f"CREATE TABLE {schema}.u (id int PRIMARY KEY); "
                        f"CREATE INDEX ASYNC u_id ON {schema}.u (id)")  # one transaction
    assert superuser.execute("SELECT indisvalid, indisunique FROM pg_index WHERE indexrelid = "
                             "to_regclass(%s)", [f"{schema}.t_v"]).fetchone() == (True, True)


def test_a_pipeline_of_many_statements_gets_every_answer_in_order(dsql_endpoint, schema):
    with dsql_endpoint.connect() as conn:
        conn.execute(f"CREATE TABLE {schema}.p (id int PRIMARY KEY, v int)")
        with conn.pipeline():
            cursors = [conn.execute("SELECT %s::int * 2", [i]) for i in range(300)]
            index = conn.execute(f"CREATE INDEX ASYNC p_v ON {schema}.p (v)")
            after = [conn.execute("SELECT %s::text", [f"after {i}"]) for i in range(50)]
        assert [c.fetchone()[0] for c in cursors] == [i * 2 for i in range(300)]
        assert all(c.statusmessage == "SELECT 1" for c in cursors)
        assert index.statusmessage == "CREATE INDEX" and len(index.fetchone()[0]) == 26
        assert [c.fetchone()[0] for c in after] == [f"after {i}" for i in range(50)]
        with conn.pipeline():  # writes in one transaction, pipelined: all there, in order
            with conn.transaction():
                for i in range(200):
                    conn.execute(f"INSERT INTO {schema}.p VALUES (%s, %s)", [i, i])
        assert conn.execute(f"SELECT count(*), sum(v) FROM {schema}.p").fetchone() == (
            200, sum(range(200)))


def test_copy_passes_through_and_an_error_leaves_the_tags_in_step(dsql_endpoint, schema):
    with dsql_endpoint.connect() as conn:
        conn.execute(f"CREATE TABLE {schema}.c (id int PRIMARY KEY, v text)")
        cur = conn.cursor()
        with cur.copy(f"COPY {schema}.c (id, v) FROM STDIN") as copy:
            for i in range(2000):
                copy.write_row((i, f"row {i}"))
        assert cur.statusmessage == "COPY 2000"
        with cur.copy(f"COPY (SELECT id, v FROM {schema}.c ORDER BY id) TO STDOUT") as copy:
            rows = list(copy.rows())
        assert rows[0] == ("0", "row 0") and len(rows) == 2000
        # an error ends its Query's answers: the next statement still gets its own tag
        with pytest.raises(psycopg.errors.DivisionByZero):
            cur.execute(f"SELECT 1/0; CREATE INDEX ASYNC c_a ON {schema}.c (v)")
        cur.execute(f"CREATE INDEX ASYNC c_v ON {schema}.c (v)")
        assert cur.statusmessage == "CREATE INDEX" and len(cur.fetchone()[0]) == 26
        with pytest.raises(psycopg.errors.UndefinedTable):
            cur.execute(f"CREATE INDEX ASYNC c_w ON {schema}.missing (v)", prepare=True)
        assert cur.execute("SELECT 'next'").fetchone() == ("next",)
        assert cur.statusmessage == "SELECT 1"


CANCEL_CLIENT = """
import os, sys, threading, time, psycopg
conninfo, how, name = sys.argv[1], sys.argv[2], sys.argv[3]
conn = psycopg.connect(conninfo, autocommit=True, application_name=name)
watcher = psycopg.connect(conninfo, autocommit=True)
def cancel_when_running():
    for _ in range(600):
        if watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                           "AND state = 'active' AND query LIKE 'SELECT pg_sleep%%'",
                           [name]).fetchone() == (1,):
            getattr(conn, how)()
            return
        time.sleep(0.05)
threading.Thread(target=cancel_when_running).start()
try:
    conn.execute("SELECT pg_sleep(60)")
    print("not cancelled")
except psycopg.errors.QueryCanceled as exc:
    print("cancelled", exc.sqlstate, conn.execute("SELECT 1").fetchone()[0])
"""


@pytest.mark.parametrize("how", ["cancel", "cancel_safe"])
def test_a_cancel_through_the_endpoint_cancels_the_statement_upstream(dsql_endpoint, how):
    """``cancel``: libpq's PQcancel, a CancelRequest in the clear; ``cancel_safe``: over
    TLS, as the connection was made (direct TLS here). The client runs in a process of its
    own: psycopg's PQcancel holds the GIL while it waits, and the endpoint runs in this one."""
    import sys

    params = dsql_endpoint.conninfo(sslnegotiation="direct")
    password = params.pop("password")
    conninfo = psycopg.conninfo.make_conninfo(**params)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = password
    name = f"bank-cancel-{secrets.token_hex(4)}"
    done = subprocess.run([sys.executable, "-c", CANCEL_CLIENT, conninfo, how, name],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cancelled", "57014", "1"]  # and the session goes on


# -- roles -------------------------------------------------------------------------------------

def test_a_role_connects_once_aws_iam_grant_maps_it(dsql_endpoint, role):
    dsql = dsql_endpoint
    refused = login(dsql, role, dsql.token(role))
    assert (refused["C"], refused["M"], refused.get("H")) == ("28000", ACCESS_DENIED, None)
    assert refused["D"].startswith("Session Id: ")
    with dsql.connect() as admin:  # AWS IAM GRANT through the endpoint: rewritten for it
        admin.execute(f"AWS IAM GRANT {role} TO '{ARN}'")
    with dsql.connect(role) as conn:
        assert conn.execute("SELECT current_user, current_setting('is_superuser')").fetchone(
            ) == (role, "off")
        assert conn.info.parameter_status("session_authorization") == role
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET dsql_strict.enabled = off")
    with dsql.connect() as admin:
        admin.execute(f"AWS IAM REVOKE {role} FROM '{ARN}'")
    assert login(dsql, role, dsql.token(role))["C"] == "28000"


def test_told_the_clients_iam_identity_only_its_mappings_count(dsql_endpoint, role):
    from bank.kit.endpoint import Endpoint, endpoint_folder

    dsql = dsql_endpoint
    with dsql.connect() as admin:
        admin.execute(f"AWS IAM GRANT {role} TO 'arn:aws:iam::111122223333:role/another'")
    told = Endpoint(dsql.endpoint.upstream, endpoint_folder(), iam_arn=ARN,
                    publish=dsql.folder / "told").start()
    try:
        other = dataclasses.replace(dsql, port=told.address[1])
        assert login(other, role, dsql.token(role))["C"] == "28000"
        assert login(dsql, role, dsql.token(role)) == {}  # any mapping, for the first one
        with dsql.connect() as admin:
            admin.execute(f"AWS IAM GRANT {role} TO '{ARN}'")
        assert login(other, role, dsql.token(role)) == {}
    finally:
        told.stop()


# -- refusals, with DSQL's SQLSTATE and text ---------------------------------------------------

def test_a_client_without_tls_is_refused(dsql_endpoint):
    fields = login(dsql_endpoint, "admin", dsql_endpoint.token(), tls=False)
    assert (fields["C"], fields["M"]) == ("28000", "unable to accept connection, ssl is required")
    with pytest.raises(psycopg.OperationalError, match="ssl is required"):
        dsql_endpoint.connect(sslmode="disable")


def test_a_tls_client_without_sni_is_refused(dsql_endpoint):
    fields = login(dsql_endpoint, "admin", dsql_endpoint.token(), sni=False)
    assert (fields["C"], fields["M"]) == ("08006", "unable to accept connection, sni was not "
                                                   "received")
    with pytest.raises(psycopg.OperationalError, match="sni was not received"):
        dsql_endpoint.connect(host="127.0.0.1", sslmode="require")  # libpq sends no SNI for an IP


@pytest.mark.parametrize("direct", [True, False])
def test_a_password_that_is_not_a_token_is_refused(dsql_endpoint, direct, caplog):
    caplog.set_level("INFO", logger="bank.kit.endpoint")
    fields = login(dsql_endpoint, "admin", "hunter2", direct=direct)
    assert (fields["C"], fields["M"], fields["H"]) == (
        "08006", ACCESS_DENIED, "The security token included in the request is invalid.")
    assert fields["D"].startswith("Session Id: ")
    with pytest.raises(psycopg.OperationalError, match="access denied"):
        dsql_endpoint.connect(password="hunter2")
    assert "not a DSQL IAM auth token" in caplog.text and "hunter2" not in caplog.text


def test_a_token_for_another_cluster_or_region_is_refused(dsql_endpoint):
    other_host = "b" * 26 + ".dsql.us-east-1.on.aws"
    for token in (dsql_endpoint.token(host=other_host),
                  dsql_endpoint.token(region="eu-west-1")):
        fields = login(dsql_endpoint, "admin", token)
        assert (fields["C"], fields["H"]) == ("08006", "The security token included in the "
                                                       "request is invalid.")


def test_an_expired_token_is_refused(dsql_endpoint, monkeypatch, caplog):
    token = dsql_endpoint.token(expires_s=900)
    assert login(dsql_endpoint, "admin", token) == {}
    later = time.time() + 901 + 60
    monkeypatch.setattr(dsql_endpoint.endpoint, "clock", lambda: later)
    caplog.set_level("INFO", logger="bank.kit.endpoint")
    fields = login(dsql_endpoint, "admin", token)
    assert (fields["C"], fields["M"]) == ("08006", ACCESS_DENIED)
    assert fields["H"].startswith("Signature expired: ") and "is now earlier than" in fields["H"]
    with pytest.raises(psycopg.OperationalError, match="Signature expired"):
        dsql_endpoint.connect(password=token)
    assert token not in caplog.text and token.split("X-Amz-Signature=")[1] not in caplog.text


def test_a_token_valid_for_more_than_a_week_is_refused(dsql_endpoint):
    assert login(dsql_endpoint, "admin", dsql_endpoint.token(expires_s=604_800)) == {}
    fields = login(dsql_endpoint, "admin", dsql_endpoint.token(expires_s=604_801))
    assert (fields["C"], fields["M"]) == ("08006", ACCESS_DENIED)
    assert "604800" in fields["H"]


def test_the_wrong_action_for_the_user_is_refused(dsql_endpoint, role):
    fields = login(dsql_endpoint, "admin", dsql_endpoint.token("admin", admin=False))
    assert (fields["C"], fields["M"], fields["H"]) == (
        "08006", ACCESS_DENIED, "Wrong user to action mapping. user: admin, action: DbConnect")
    with pytest.raises(psycopg.OperationalError, match="Wrong user to action mapping"):
        dsql_endpoint.connect(password=dsql_endpoint.token("admin", admin=False))
    fields = login(dsql_endpoint, role, dsql_endpoint.token(role, admin=True))
    assert fields["H"] == f"Wrong user to action mapping. user: {role}, action: DbConnectAdmin"


def test_a_database_other_than_postgres_is_refused(dsql_endpoint):
    fields = login(dsql_endpoint, "admin", dsql_endpoint.token(), database="bank")
    assert (fields["C"], fields["M"]) == ("3D000", 'database "bank" does not exist')


def test_a_client_that_does_not_trust_the_ca_gets_a_certificate_verify_error(dsql_endpoint):
    for rootcert in (DSQL_ROOT_CERTS, None):  # the Amazon roots; the machine's store
        overrides = {"sslrootcert": str(rootcert) if rootcert else "system"}
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            dsql_endpoint.connect(**overrides)
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        dsql_endpoint.connect(host="b" * 26 + ".dsql.us-east-1.on.aws")


def test_money_moves_once_through_pipelined_transactions_of_the_dsql_engine(dsql_environment):
    """The engine's round-trip piece (BEGIN with the first statement, COMMIT with the
    writes) through the endpoint: the relay keeps every pipelined message in order."""
    from bank.adapters import database
    from bank.adapters.settings import Settings

    engine = database.make_engine(Settings.from_env())
    name = f"ep_{secrets.token_hex(4)}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE TABLE public.{name} (id int PRIMARY KEY, "
                          "balance numeric(18, 6) NOT NULL)"))
    try:
        with engine.begin() as conn:
            conn.execute(text(f"INSERT INTO public.{name} VALUES (1, 100), (2, 0)"))
        for _ in range(20):
            with engine.begin() as conn:
                conn.execute(text(f"UPDATE public.{name} SET balance = balance - 1 WHERE id = 1"))
                conn.execute(text(f"UPDATE public.{name} SET balance = balance + 1 WHERE id = 2"))
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT id, balance FROM public.{name} ORDER BY id")).all()
        assert rows == [(1, Decimal(80)), (2, Decimal(20))]
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP TABLE public.{name}"))
        engine.dispose()
