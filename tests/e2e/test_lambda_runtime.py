"""The built artifacts, run the way Lambda runs them, against the local DSQL endpoint.

``make build`` writes ``.aws-sam/build``; ``.ci/sam-check`` then runs this module with
``BANK_SAM_BUILD`` naming that folder (without it, the module is not collected:
tests/e2e/conftest.py). Each function runs as a process of ``awslambdaric`` (Lambda's own
runtime client) on Python 3.13, with nothing on its path but the artifact, the layer and
the runtime client, fed by a local Runtime API (``bank.kit.lambda_runtime``), frozen
between invocations, with the template's environment: ``CLUSTER_ENDPOINT``, ``DB_USER``,
the ``auroradsql`` engine and its IAM tokens, ``verify-full``, unchanged. The one setting
``BANK_DSQL_LOCAL`` sends them to the local endpoint, in front of the embedded server in
strict mode; ``BANK_SCHEMA`` gives this run a schema of its own.

CloudFormation's side of the custom resource is a local HTTP server
(``ResponseCatcher``). Nothing is mocked: the same bytes a Lambda sandbox would exchange.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from bank.kit import lambda_runtime as lr
from tests.conftest import Schema, _server_url
from tests.integration.test_handlers import EVENTS, EXPECTED

BUILD = Path(os.environ.get("BANK_SAM_BUILD", ".aws-sam/build")).resolve()
CHAPTERS = ["Ch01Function", "Ch03Function", "Ch04Function", "Ch05Function", "Ch06Function",
            "Ch07Function"]
#: Each function's first cold start: printed at the end of the run (tests/e2e/conftest.py).
COLD_STARTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def runtime() -> lr.Runtime:
    return lr.Runtime.find().check()


@pytest.fixture(scope="module")
def schema() -> Iterator[Schema]:
    """An empty schema: the built MigrateFunction migrates it."""
    made = Schema(_server_url(), prefix="bank_lambda").create(migrate=False)
    yield made
    made.drop()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[object]:
    """The local DSQL endpoint, which takes the IAM identity of the chapter functions'
    role (AppFunctionRole) for every client: bank_app is accepted once the migration maps
    it to that role."""
    from bank.kit.endpoint import Endpoint, Upstream, endpoint_folder

    publish = Path(tempfile.mkdtemp(prefix="bank-lambda-endpoint-"))
    place = lr.Place("placeholder")
    endpoint = Endpoint(Upstream.embedded(), endpoint_folder(), publish=publish,
                        iam_arn=place.role_arn("AppFunctionRole")).start()
    yield endpoint
    endpoint.stop()
    shutil.rmtree(publish, ignore_errors=True)


@pytest.fixture(scope="module")
def place(endpoint) -> lr.Place:
    return lr.Place(endpoint.host, endpoint.region)


@pytest.fixture(scope="module")
def cloudformation() -> Iterator[lr.ResponseCatcher]:
    catcher = lr.ResponseCatcher()
    yield catcher
    catcher.close()


@pytest.fixture(scope="module")
def sandboxes(runtime, endpoint, place, schema) -> Iterator[dict[str, lr.Sandbox]]:
    """One warm sandbox per function for the module, as Lambda keeps one per function."""
    made = {name: lr.sandbox(BUILD, name, runtime, place,
                             {"BANK_DSQL_LOCAL": str(endpoint.publish),
                              "BANK_SCHEMA": schema.name})
            for name in [*CHAPTERS, "MigrateFunction"]}
    yield made
    for sandbox in made.values():
        sandbox.close()


def invoke(sandbox: lr.Sandbox, event) -> lr.Reply:
    reply = sandbox.invoke(event)
    if reply.cold_start_s is not None:
        COLD_STARTS.setdefault(sandbox.name, reply.cold_start_s)
    return reply


def custom_resource(kind: str, cloudformation: lr.ResponseCatcher, place: lr.Place,
                    **more) -> dict:
    """A custom resource event as CloudFormation sends it for DatabaseMigration."""
    return {
        "RequestType": kind, "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:"
        "function:bank-MigrateFunction:live", "ResponseURL": cloudformation.url(kind),
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/bank/1",
        "RequestId": f"request-{kind}", "LogicalResourceId": "DatabaseMigration",
        "ResourceType": "Custom::DatabaseMigration",
        "ResourceProperties": {"ServiceToken": "x", "CodeVersion": "1", "AppRole": "bank_app",
                               "AppRoleArn": place.role_arn("AppFunctionRole"),
                               "Seed": "true"},
        **more,
    }


def answer_of(cloudformation: lr.ResponseCatcher) -> dict:
    return cloudformation.responses.get(timeout=5)


@pytest.fixture(scope="module")
def migrated(sandboxes, cloudformation, place, schema) -> dict:
    """The Create, through the built MigrateFunction: migrated, mapped, seeded."""
    reply = invoke(sandboxes["MigrateFunction"],
                   custom_resource("Create", cloudformation, place))
    assert reply.ok, reply.payload
    answer = answer_of(cloudformation)
    assert answer["Status"] == "SUCCESS", answer
    return answer


def test_migration_create_update_delete(migrated, sandboxes, cloudformation, place, schema):
    assert migrated["Status"] == "SUCCESS" and migrated["bytes"] <= 4096
    assert migrated["PhysicalResourceId"] and migrated["RequestId"] == "request-Create"
    with schema.admin.connect() as conn:
        version = conn.execute(text(f"SELECT version_num FROM {schema.name}.alembic_version"))
        assert version.scalar()
        accounts = conn.execute(text(f"SELECT count(*) FROM {schema.name}.accounts")).scalar()
    assert accounts == 1000  # seeded
    physical = migrated["PhysicalResourceId"]
    for kind in ("Update", "Delete"):
        reply = invoke(sandboxes["MigrateFunction"], custom_resource(
            kind, cloudformation, place, PhysicalResourceId=physical))
        assert reply.ok, reply.payload
        answer = answer_of(cloudformation)
        assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", physical), answer
    with schema.admin.connect() as conn:  # Delete touches nothing
        assert conn.execute(text(f"SELECT count(*) FROM {schema.name}.accounts")).scalar() == 1000


def test_an_unknown_request_type_answers_failed(migrated, sandboxes, cloudformation, place):
    reply = invoke(sandboxes["MigrateFunction"], custom_resource("Bogus", cloudformation, place))
    answer = answer_of(cloudformation)
    assert answer["Status"] == "FAILED" and "Bogus" in answer["Reason"], answer
    assert reply.ok or reply.error_type == "InvalidRequest", reply.payload


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_event_file(migrated, sandboxes, name):
    function = f"Ch0{name[3]}Function"
    reply = invoke(sandboxes[function], json.loads((EVENTS / name).read_text()))
    if EXPECTED[name] is None:
        assert reply.ok, reply.payload
    else:
        assert reply.error_type == EXPECTED[name], reply.payload
        assert reply.payload["errorMessage"]


def test_ch07_through_its_steps(migrated, sandboxes):
    for name in ("ch07-setup.json", "ch07-query.json", "ch07-optimize.json",
                 "ch07-query-optimized.json"):
        reply = invoke(sandboxes["Ch07Function"], json.loads((EVENTS / name).read_text()))
        assert reply.ok, (name, reply.payload)


def test_a_replay_answers_replayed_and_moves_nothing(migrated, sandboxes, schema):
    event = {"payer_id": 11, "payee_id": 12, "amount": "7",
             "transfer_id": "0b0b0b0b-1111-4222-8333-444455556666"}
    first = invoke(sandboxes["Ch05Function"], event)
    assert first.ok and not first.payload.get("replayed"), first.payload
    again = invoke(sandboxes["Ch05Function"], event)
    assert again.ok and again.payload["replayed"] is True, again.payload
    with schema.admin.connect() as conn:
        balances = dict(conn.execute(text(
            f"SELECT id, balance FROM {schema.name}.accounts WHERE id IN (11, 12)")).all())
    assert balances == {11: Decimal(93), 12: Decimal(107)}


def test_the_request_line_is_a_json_object_in_lambdas_log(migrated, sandboxes):
    reply = invoke(sandboxes["Ch03Function"], {"id": 1})
    assert reply.ok, reply.payload
    records = [json.loads(line) for line in reply.logs if line.startswith("{")]
    requests = [r for r in records if r.get("logger") == "bank.requests"]
    assert len(requests) == 1, reply.logs
    line = requests[0]
    assert line["level"] == "INFO" and line["requestId"] == reply.request_id
    assert isinstance(line["message"], dict), line
    assert line["message"]["outcome"] == "ok" and line["message"]["function"] == "Ch03Function"
    metrics = [r for r in records if "_aws" in r]
    assert metrics and metrics[0]["Requests"] == 1, reply.logs


def test_a_warm_sandbox_is_frozen_between_invocations(migrated, sandboxes):
    sandbox = sandboxes["Ch03Function"]
    assert invoke(sandbox, {"id": 2}).ok
    assert sandbox.process is not None and sandbox.api is not None
    assert sandbox.api.idle.wait(5)
    state = Path(f"/proc/{sandbox.process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert state == "T", f"process state {state}, not stopped"
    assert invoke(sandbox, {"id": 2}).cold_start_s is None  # the same, warm process


def test_an_unmapped_role_is_refused_with_its_reason(migrated, runtime, place, schema,
                                                      caplog):
    """The endpoint takes another IAM identity than the one bank_app is mapped to."""
    from bank.kit.endpoint import Endpoint, Upstream, endpoint_folder

    caplog.set_level(logging.INFO, logger="bank.kit.endpoint")

    publish = Path(tempfile.mkdtemp(prefix="bank-lambda-other-"))
    other = Endpoint(Upstream.embedded(), endpoint_folder(), publish=publish,
                     host=place.cluster_endpoint, region=place.region,
                     iam_arn=place.role_arn("SomeOtherRole")).start()
    try:
        with lr.sandbox(BUILD, "Ch05Function", runtime, place,
                        {"BANK_DSQL_LOCAL": str(publish), "BANK_SCHEMA": schema.name}) as box:
            reply = box.invoke(json.loads((EVENTS / "ch05.json").read_text()))
    finally:
        other.stop()
        shutil.rmtree(publish, ignore_errors=True)
    assert reply.error_type == "DatabaseAccessDenied", reply.payload
    message = reply.payload["errorMessage"]
    assert "access denied" in message and "mapping" in message, message
    assert "X-Amz-Signature" not in message and "X-Amz-Signature" not in "\n".join(reply.logs)
    refused = [r for r in caplog.records if r.getMessage().startswith("refused a connection")]
    assert len(refused) == 1, [r.getMessage() for r in refused]  # one attempt: not retried


def test_an_untrusted_certificate_is_refused_with_its_reason(migrated, runtime, endpoint,
                                                              place, schema):
    """The endpoint's address, with a CA that did not sign its certificate."""
    from bank.kit.endpoint import Endpoint, Upstream

    elsewhere = Path(tempfile.mkdtemp(prefix="bank-lambda-ca-"))
    try:
        Endpoint(Upstream.embedded(), elsewhere / "ca").start().stop()  # makes another CA
        (elsewhere / "address").write_text((Path(endpoint.publish) / "address").read_text())
        shutil.copy(elsewhere / "ca" / "ca.pem", elsewhere / "ca.pem")
        with lr.sandbox(BUILD, "Ch03Function", runtime, place,
                        {"BANK_DSQL_LOCAL": str(elsewhere), "BANK_SCHEMA": schema.name}) as box:
            reply = box.invoke({"id": 1})
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)
    assert reply.error_type == "DatabaseAccessDenied", reply.payload
    assert "certificate" in reply.payload["errorMessage"], reply.payload


def test_cold_starts_were_measured(migrated):
    assert set(COLD_STARTS) >= {"MigrateFunction", "Ch03Function", "Ch05Function"}


# -- the harness itself, on a handler of the test's own ----------------------------------

TOY = '''
import os, threading, time

def sleep(event, context):
    time.sleep(event["s"])
    return {"slept": event["s"], "remaining_ms": context.get_remaining_time_in_millis()}

def die(event, context):
    os._exit(3)

def ticking(event, context):
    """Answers at once and leaves a thread counting in a file."""
    def tick():
        while True:
            with open(event["file"], "a") as fh:
                fh.write(".")
            time.sleep(0.01)
    threading.Thread(target=tick, daemon=True).start()
    return "ticking"
'''


@pytest.fixture()
def toy(tmp_path, runtime):
    (tmp_path / "task").mkdir()
    (tmp_path / "layer").mkdir()
    (tmp_path / "task" / "toy.py").write_text(TOY)

    def make(handler: str, timeout_s: float = 2) -> lr.Sandbox:
        return lr.Sandbox(runtime, tmp_path / "task", tmp_path / "layer", handler,
                          name="Toy", timeout_s=timeout_s)

    return make


def test_the_deadline_and_a_timeout_as_lambda_reports_them(toy):
    with toy("toy.sleep", timeout_s=2) as box:
        first = box.invoke({"s": 0})
        assert first.ok and first.cold_start_s is not None
        assert 0 < first.payload["remaining_ms"] <= 2000
        late = box.invoke({"s": 5})
        assert late.error_type == "Sandbox.Timedout", late.payload
        after = box.invoke({"s": 0})  # a new sandbox: cold again
        assert after.ok and after.cold_start_s is not None and box.cold_starts == 2


def test_a_crash_and_an_import_error_as_lambda_reports_them(toy):
    with toy("toy.die") as box:
        assert box.invoke({}).error_type == "Runtime.ExitError"
    with toy("no_such_module.handler") as box:
        reply = box.invoke({})
        assert reply.error_type == "Runtime.ImportModuleError", reply.payload


def test_nothing_runs_in_a_frozen_sandbox(toy, tmp_path):
    ticks = tmp_path / "ticks"
    with toy("toy.ticking") as box:
        assert box.invoke({"file": str(ticks)}).payload == "ticking"
        assert box.api is not None and box.api.idle.wait(5)
        time.sleep(0.2)
        frozen_at = ticks.stat().st_size
        time.sleep(0.5)
        assert ticks.stat().st_size == frozen_at  # frozen: the thread did not tick
        box.invoke({"file": str(tmp_path / "other")})  # thawed for this one
        assert ticks.stat().st_size > frozen_at


def test_bank_invoke_runtime_lambda(app_env):
    """The command a user runs: its answer on stdout, the function's log and its cold start
    on stderr, the exit status Lambda's outcome."""
    def run(name: str, event: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bank.kit.cli", "invoke", name, "--runtime", "lambda",
             "--build-dir", str(BUILD), "--event", str(EVENTS / event)],
            env=app_env, capture_output=True, text=True, timeout=120)

    ok = run("ch01", "ch01.json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"greeting": "hello reinvent"}
    assert "Ch01Function: answered in" in ok.stderr and "cold start" in ok.stderr
    refused = run("ch05", "ch05-nan-amount.json")
    assert refused.returncode == 1, refused.stderr
    assert json.loads(refused.stdout)["errorType"] == "InvalidRequest"
    assert '"outcome": "InvalidRequest"' in refused.stderr  # the request line, from Lambda's log
