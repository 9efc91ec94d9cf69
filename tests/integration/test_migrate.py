"""The deploy-time migration custom resource (``bank.handlers.migrate``), end to end.

CloudFormation's side is played by a local HTTP server that takes the PUT to the
``ResponseURL``; the database is the test server, in a fresh schema of its own; the
application role is a real role on it. Nothing is mocked.
"""

from __future__ import annotations

import http.server
import json
import os
import secrets
import socket
import threading
import time
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bank.adapters import database, migrations, roles, settings
from bank.domain.errors import BankError
from bank.handlers import migrate
from tests.conftest import Schema, engine_for

ARN = "arn:aws:iam::123456789012:role/bank-AppFunctionRole-0123456789AB"


class CloudFormation:
    """An HTTP server on 127.0.0.1 that records each PUT to the response URL."""

    def __init__(self):
        self.responses: list[dict] = []
        received = self.responses

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self):  # noqa: N802 - http.server's naming
                length = int(self.headers["Content-Length"])
                raw = self.rfile.read(length)
                body = json.loads(raw)
                body["_bytes"] = len(raw)
                body["_content_type"] = self.headers.get("Content-Type")
                body["_path"] = self.path
                received.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/response?X-Amz-Signature=x"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def cfn():
    server = CloudFormation()
    yield server
    server.close()


class Context:
    function_name = "bank-MigrateFunction-abc"
    aws_request_id = "req-1"

    def __init__(self, seconds: float = 300):
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def event(cfn: CloudFormation, request_type: str, **properties) -> dict:
    body = {
        "RequestType": request_type,
        "ResponseURL": cfn.url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/bank/guid",
        "RequestId": secrets.token_hex(8),
        "LogicalResourceId": "DatabaseMigration",
        "ResourceType": "Custom::DatabaseMigration",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", **properties},
    }
    if request_type != "Create":
        body["PhysicalResourceId"] = migrate.PHYSICAL_ID
    return body


def point_at(monkeypatch, url: str, schema: str | None = None, **env: str) -> None:
    """The application's settings and engine, for this database and schema."""
    monkeypatch.setenv("DATABASE_URL", url)
    if schema:
        monkeypatch.setenv("BANK_SCHEMA", schema)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings.get_settings.cache_clear()
    database.install_engine(None)


@pytest.fixture()
def fresh(server_url, monkeypatch):
    """A new, empty schema the application points at, and a role name of its own."""
    schema = Schema(server_url, prefix="bank_migrate").create(migrate=False)
    role = f"bank_app_{secrets.token_hex(4)}"
    point_at(monkeypatch, server_url, schema.name)
    yield schema, role
    database.install_engine(None)
    settings.get_settings.cache_clear()
    with schema.admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                              {"r": role}).first()
        if exists:
            conn.execute(text(f"DROP OWNED BY {role}"))
    schema.drop()
    if exists:
        admin = engine_for(server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


def head() -> str:
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(migrations.config()).get_current_head())


def test_create_migrates_creates_the_role_seeds_and_answers_success(cfn, fresh):
    schema, role = fresh
    result = migrate.handler(event(cfn, "Create", AppRole=role, AppRoleArn=ARN, Seed="true"),
                             Context())
    assert result == {"Status": "SUCCESS"}
    [response] = cfn.responses
    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == migrate.PHYSICAL_ID
    assert response["LogicalResourceId"] == "DatabaseMigration"
    assert response["StackId"].endswith("stack/bank/guid")
    assert response["_content_type"] == ""  # what the pre-signed URL was signed for
    assert response["Data"]["Revision"] == head()
    assert response["Data"]["Seeded"] == "true"
    with schema.admin.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {schema.name}.accounts")).scalar() == 1000
        privileges = {
            table: [p for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
                    if conn.execute(text("SELECT has_table_privilege(:r, :t, :p)"),
                                    {"r": role, "t": f"{schema.name}.{table}", "p": p}).scalar()]
            for table in ("accounts", "accounts2", "transfers", "accounts7", "alembic_version")
        }
    assert privileges == {
        "accounts": ["SELECT", "UPDATE"], "accounts2": ["SELECT", "UPDATE"],
        "transfers": ["SELECT", "INSERT"], "accounts7": [], "alembic_version": [],
    }


def test_update_runs_again_harmlessly_with_the_same_physical_id(cfn, fresh):
    _, role = fresh
    migrate.handler(event(cfn, "Create", AppRole=role, AppRoleArn=ARN), Context())
    migrate.handler(event(cfn, "Update", AppRole=role, AppRoleArn=ARN, Seed="false"), Context())
    first, second = cfn.responses
    assert first["Status"] == second["Status"] == "SUCCESS"
    assert first["PhysicalResourceId"] == second["PhysicalResourceId"] == migrate.PHYSICAL_ID
    # CREATE ROLE, AWS IAM GRANT (strict mode emulates DSQL's), USAGE, two GRANTs; then
    # the role and its IAM mapping exist: the grants only.
    strict = os.environ.get("BANK_STRICT") == "1"
    assert first["Data"]["RoleStatementsRun"] == ("5" if strict else "4")
    assert second["Data"]["RoleStatementsRun"] == "3"
    assert second["Data"]["Seeded"] == "false"


def test_the_role_can_run_ch03_to_ch06_and_nothing_more(cfn, fresh, monkeypatch, server_url):
    from bank.handlers import ch03, ch05, ch06, ch07

    schema, role = fresh
    migrate.handler(event(cfn, "Create", AppRole=role, AppRoleArn=ARN, Seed="true"), Context())
    # Connect as the role would: libpq's options set the session role at connect.
    as_role = make_url(server_url).update_query_dict(
        {"options": f"-crole={role}"}).render_as_string(hide_password=False)
    point_at(monkeypatch, as_role, schema.name)
    with database.get_engine().connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == role
    assert ch03.handler({"id": 1}) == {"balance": "100.000000"}
    moved = ch05.handler({"payer_id": 1, "payee_id": 2, "amount": "1.50"})
    assert Decimal(moved["payer_balance"]) == Decimal("98.5")
    uuids = ["123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-426614174001"]
    assert ch06.handler({"payer_id": uuids[0], "payee_id": uuids[1], "amount": "1"})
    with pytest.raises(BankError, match="42501"):  # insufficient_privilege
        with database.get_engine().connect() as conn:
            conn.execute(text("DELETE FROM transfers"))
    with pytest.raises(BankError, match="42501"):  # ch07 rebuilds accounts7: the owner's work
        ch07.handler({"operation": "setup", "rows": 10})


def test_a_failed_migration_answers_failed_with_the_error_name(cfn, monkeypatch, server_url):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_at(monkeypatch, f"postgresql://postgres:secret-password@127.0.0.1:{port}/x",
             BANK_CONNECT_TIMEOUT_S="2")
    try:
        result = migrate.handler(event(cfn, "Create", AppRole="bank_app", AppRoleArn=ARN),
                                 Context())
    finally:
        settings.get_settings.cache_clear()
        database.install_engine(None)
    [response] = cfn.responses
    assert response["Status"] == "FAILED"
    assert response["Reason"].startswith("DatabaseUnavailable: ")
    assert "secret-password" not in response["Reason"]
    assert result == {"Status": "FAILED", "errorType": "DatabaseUnavailable"}


def test_a_bad_role_arn_fails_after_the_migrations(cfn, fresh):
    _, role = fresh
    migrate.handler(event(cfn, "Create", AppRole=role, AppRoleArn="arn'; DROP ROLE admin; --"),
                    Context())
    [response] = cfn.responses
    assert response["Status"] == "FAILED"
    assert response["Reason"].startswith("ConfigurationError: not an IAM role ARN")


def test_properties_that_are_not_an_object_are_answered_failed(cfn, fresh):
    bad = event(cfn, "Create")
    bad["ResourceProperties"] = ["not", "an", "object"]
    assert migrate.handler(bad, Context())["errorType"] == "InvalidRequest"
    [response] = cfn.responses
    assert response["Status"] == "FAILED" and "ResourceProperties" in response["Reason"]


def test_an_unknown_request_type_is_answered_failed_and_migrates_nothing(cfn, fresh):
    schema, _ = fresh
    result = migrate.handler(event(cfn, "Bogus"), Context())
    assert result == {"Status": "FAILED", "errorType": "InvalidRequest"}
    [response] = cfn.responses
    assert response["Status"] == "FAILED" and "unknown RequestType 'Bogus'" in response["Reason"]
    with schema.admin.connect() as conn:  # not even the version table
        assert conn.execute(text("SELECT to_regclass(:t)"),
                            {"t": f"{schema.name}.alembic_version"}).scalar() is None


@pytest.mark.parametrize("missing", ["StackId", "RequestId", "LogicalResourceId"])
def test_an_event_without_its_ids_is_still_answered(cfn, fresh, missing):
    bad = event(cfn, "Create")
    del bad[missing]
    assert migrate.handler(bad, Context())["errorType"] == "InvalidRequest"
    [response] = cfn.responses
    assert response["Status"] == "FAILED" and f"no {missing}" in response["Reason"]
    assert response[missing] == ""


def test_the_answer_is_never_over_4096_bytes(cfn, monkeypatch):
    point_at(monkeypatch, "postgresql://postgres@127.0.0.1:1/x")
    huge = event(cfn, "Bogus" + "é" * 5000)
    huge.update(StackId="s" * 9000, RequestId="r" * 9000, LogicalResourceId="l" * 9000,
                PhysicalResourceId="p" * 9000)
    try:
        migrate.handler(huge, Context())
    finally:
        settings.get_settings.cache_clear()
        database.install_engine(None)
    [response] = cfn.responses
    assert response["_bytes"] <= 4096 and response["Status"] == "FAILED"


def test_a_response_url_that_takes_no_answer_is_a_named_error(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(migrate.time, "sleep", lambda seconds: None)  # its pauses: not waited
    dead = {"RequestType": "Delete", "ResponseURL": f"http://127.0.0.1:{port}/r",
            "StackId": "s", "RequestId": "r", "LogicalResourceId": "l"}
    with pytest.raises(migrate.ResponseNotDelivered, match="3 tries"):
        migrate.handler(dead, Context())


def test_a_refused_connection_is_tried_again_for_a_while_then_answered(cfn, fresh, monkeypatch,
                                                                       server_url, caplog):
    """A new IAM permission takes a while to apply: the refusal is tried again, for
    ACCESS_RETRY_S, then answered FAILED as DatabaseAccessDenied."""
    import logging

    schema, _ = fresh
    monkeypatch.setattr(migrate, "ACCESS_RETRY_S", 2.5)
    # A role that does not exist: refused whether the server checks passwords or trusts.
    refused = make_url(server_url).set(
        username="bank_no_such_role", password="not-the-password").difference_update_query(
        ["passfile"]).render_as_string(hide_password=False)
    point_at(monkeypatch, refused, schema.name)
    caplog.set_level(logging.WARNING, logger="bank.handlers.migrate")
    result = migrate.handler(event(cfn, "Create"), Context())
    assert result == {"Status": "FAILED", "errorType": "DatabaseAccessDenied"}
    tries = [r for r in caplog.records if "trying again" in r.getMessage()]
    assert len(tries) >= 1  # tried again before answering
    [response] = cfn.responses
    assert response["Reason"].startswith("DatabaseAccessDenied: ")
    assert "not-the-password" not in response["Reason"]


def test_after_a_timeout_answer_nothing_of_the_migration_goes_on(cfn, fresh, monkeypatch):
    """The migration waits on a lock past its deadline: it is answered FAILED
    (MigrationTimeout) and its statement is cancelled, so that when the lock goes, nothing
    applies a revision behind the answer (a frozen Lambda container would resume it)."""
    schema, _ = fresh
    schema.alembic("upgrade", "0006_transfers_ledger")
    point_at(monkeypatch, schema.server, schema.name, BANK_LOCK_TIMEOUT_S="60")
    holder = engine_for(schema.server)
    try:
        with holder.connect() as conn:
            conn.execute(text(f"LOCK TABLE {schema.name}.alembic_version IN ACCESS EXCLUSIVE MODE"))
            result = migrate.handler(event(cfn, "Create"), Context(migrate.ANSWER_MARGIN_S + 2))
            assert result == {"Status": "FAILED", "errorType": "MigrationTimeout"}
            conn.rollback()  # the lock goes
        time.sleep(1.0)  # were anything still running, it would go on now
        with holder.connect() as conn:
            version = conn.execute(text(f"SELECT version_num FROM {schema.name}.alembic_version"))
            assert version.scalar() == "0006_transfers_ledger"
    finally:
        holder.dispose()
    [response] = cfn.responses
    assert response["Reason"].startswith("MigrationTimeout: ")


def test_work_not_done_in_time_is_answered_failed_before_the_timeout(cfn, monkeypatch):
    # A server that accepts connections and never answers: the migration hangs.
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    point_at(monkeypatch, f"postgresql://postgres@127.0.0.1:{port}/x",
             BANK_CONNECT_TIMEOUT_S="5")
    try:
        began = time.monotonic()
        migrate.handler(event(cfn, "Create"), Context(migrate.ANSWER_MARGIN_S + 1))
        elapsed = time.monotonic() - began
    finally:
        silent.close()
        settings.get_settings.cache_clear()
        database.install_engine(None)
    [response] = cfn.responses
    assert response["Status"] == "FAILED"
    assert response["Reason"].startswith("MigrationTimeout: ")
    assert 0.9 < elapsed < 3  # answered with the margin left, not at the function's timeout


def test_delete_answers_success_and_touches_nothing(cfn, monkeypatch):
    # No database at all: Delete must not need one.
    point_at(monkeypatch, "postgresql://postgres@127.0.0.1:1/x")
    try:
        assert migrate.handler(event(cfn, "Delete"), Context()) == {"Status": "SUCCESS"}
    finally:
        settings.get_settings.cache_clear()
        database.install_engine(None)
    [response] = cfn.responses
    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == migrate.PHYSICAL_ID


def test_not_a_custom_resource_event_is_refused(cfn):
    with pytest.raises(BankError, match="ResponseURL"):
        migrate.handler({"RequestType": "Create"}, Context())
    assert cfn.responses == []


def test_reason_never_carries_sql():
    from sqlalchemy.exc import ProgrammingError

    class DriverError(Exception):
        sqlstate = "42P01"

    exc = ProgrammingError("SELECT * FROM t WHERE secret = %(p)s", {"p": "hunter2"},
                           DriverError("relation does not exist"))
    reason = migrate.reason_of(exc)
    assert reason == "ProgrammingError: DriverError (SQLSTATE 42P01)"
    assert "hunter2" not in reason and "SELECT" not in reason


# --- the role's SQL, as data ------------------------------------------------------------


def test_role_statements_for_dsql():
    steps = roles.plan("bank_app", ARN)
    assert [s.sql for s in steps] == [
        "CREATE ROLE bank_app WITH LOGIN",
        f"AWS IAM GRANT bank_app TO '{ARN}'",
        "GRANT SELECT, UPDATE ON accounts, accounts2 TO bank_app",
        "GRANT SELECT, INSERT ON transfers TO bank_app",
    ]
    assert steps[0].done_if and steps[1].done_if and steps[1].dsql_only
    assert "sys.iam_pg_role_mappings" in steps[1].done_if
    for step in steps:  # one statement each: DSQL runs each as its own transaction
        assert ";" not in step.sql
        assert "DELETE" not in step.sql and "TRUNCATE" not in step.sql
        assert "ALL" not in step.sql.split()  # no ALL PRIVILEGES / ALL TABLES


def test_role_statements_name_a_schema_other_than_public():
    assert roles.plan("bank_app", None, "public")[1].sql.startswith("GRANT SELECT, UPDATE")
    assert roles.plan("bank_app", None, "lab")[1].sql == "GRANT USAGE ON SCHEMA lab TO bank_app"


@pytest.mark.parametrize("role", ["Bank", "bank-app", "bank_app; DROP", "", "a" * 64])
def test_role_names_are_checked(role):
    with pytest.raises(BankError):
        roles.plan(role, None)


@pytest.mark.parametrize("arn", [
    "arn:aws:iam::123456789012:user/someone",
    "arn:aws:iam::123456789012:role/x' OR '1",
    "arn:aws:iam::12345:role/short-account",
    "arn:aws:sts::123456789012:assumed-role/r/s",
])
def test_arns_are_checked(arn):
    with pytest.raises(BankError, match="not an IAM role ARN"):
        roles.plan("bank_app", arn)


def test_role_matches_the_template():
    from tests.unit.test_template import load_template

    template = load_template()
    assert (template["Resources"]["DatabaseMigration"]["Properties"]["AppRole"]
            == roles.APP_ROLE)
    for name in ("Ch03Function", "Ch04Function", "Ch05Function", "Ch06Function"):
        variables = template["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert variables["DB_USER"] == roles.APP_ROLE
