"""``bank loadtest --remote``: the load test through Lambda's Invoke API, offline.

The AWS side is botocore's: ``Stubber`` answers for Lambda and CloudFormation, and one test
answers each Invoke by running the real handler in-process behind the client (botocore's
``before-call`` event, the hook Stubber itself uses), so that the money and ledger checks
run against the real test database.
"""

from __future__ import annotations

import io
import json
import socket
from decimal import Decimal

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from bank.adapters import database, settings
from bank.domain.model import Account
from bank.kit import loadtest
from bank.kit.cli import commands, remote
from bank.kit.cli.main import main

NAME = "bank-Ch05Function-AbCdEf123456"


def client(service: str, **kwargs):
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="AKIAFAKE",
                        aws_secret_access_key="fake", **kwargs)


def payload(body) -> StreamingBody:
    data = json.dumps(body).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def expect_invoke(stubber: Stubber, body, function_error: str | None = None) -> None:
    response = {"StatusCode": 200, "Payload": payload(body)}
    if function_error:
        response["FunctionError"] = function_error
    stubber.add_response("invoke", response, {"FunctionName": NAME,
                                              "InvocationType": "RequestResponse",
                                              "Payload": ANY})


def ok(n: int, attempts: int = 1) -> dict:
    return {"payer_balance": "99.000000", "transaction_time": "3.1ms",
            "transfer_id": f"00000000-0000-4000-8000-{n:012d}", "attempts": attempts}


def test_invoker_returns_the_response_and_names_the_errors():
    lam = client("lambda")
    invoke = remote.invoker(lam, NAME)
    with Stubber(lam) as stub:
        expect_invoke(stub, ok(1))
        expect_invoke(stub, {"errorType": "InsufficientFunds",
                             "errorMessage": "Insufficient balance: 1.00"}, "Unhandled")
        stub.add_client_error("invoke", service_error_code="TooManyRequestsException",
                              service_message="Rate exceeded", http_status_code=429)
        assert invoke({"payer_id": 1, "payee_id": 2, "amount": "1"}) == ok(1)
        with pytest.raises(remote.RemoteInvokeError) as info:
            invoke({"payer_id": 1, "payee_id": 2, "amount": "1"})
        assert info.value.error_type == "InsufficientFunds"
        with pytest.raises(remote.RemoteInvokeError) as info:
            invoke({})
        assert info.value.error_type == "TooManyRequestsException"
        stub.assert_no_pending_responses()


def test_the_function_name_comes_from_the_stack():
    cfn = client("cloudformation")
    with Stubber(cfn) as stub:
        stub.add_response(
            "describe_stack_resource",
            {"StackResourceDetail": {"LogicalResourceId": "Ch05Function",
                                     "PhysicalResourceId": NAME,
                                     "ResourceType": "AWS::Lambda::Function",
                                     "LastUpdatedTimestamp": "2026-11-28T00:00:00Z",
                                     "ResourceStatus": "CREATE_COMPLETE"}},
            {"StackName": "bank", "LogicalResourceId": "Ch05Function"},
        )
        stub.add_client_error("describe_stack_resource", service_error_code="ValidationError",
                              service_message="Stack 'nope' does not exist")
        assert remote.function_name(cfn, "bank", "Ch05Function") == NAME
        with pytest.raises(remote.RemoteSetupError, match="ValidationError: Stack 'nope'"):
            remote.function_name(cfn, "nope", "Ch05Function")


def test_a_remote_run_counts_every_outcome_and_says_the_checks_were_skipped():
    lam = client("lambda")
    with Stubber(lam) as stub:
        expect_invoke(stub, ok(1))
        expect_invoke(stub, ok(2, attempts=3))
        expect_invoke(stub, {"errorType": "InsufficientFunds", "errorMessage": "x"}, "Unhandled")
        expect_invoke(stub, {"errorType": "ConflictRetriesExhausted", "errorMessage": "x"},
                      "Unhandled")
        stub.add_client_error("invoke", service_error_code="TooManyRequestsException",
                              http_status_code=429)
        report = loadtest.run("Ch05Function", remote.invoker(lam, NAME), None, Account,
                              [1, 2, 3], iters=5, seed=7, checks_skipped="no database here",
                              where=f"remote: {NAME}")
    assert report.requests == 5 and report.successes == 2
    assert dict(report.errors) == {"InsufficientFunds": 1, "ConflictRetriesExhausted": 1,
                                   "TooManyRequestsException": 1}
    assert dict(report.attempts) == {1: 1, 3: 1}
    assert report.conflicts == 1 and report.insufficient_balance == 1
    assert not report.checked and report.conserved is None and report.ledger_complete is None
    assert report.sound  # nothing wrong was found; nothing was checked either
    text = loadtest.render(report)
    assert f"remote: {NAME}" in text
    assert "money                 NOT CHECKED: no database here" in text
    assert report.to_dict()["checks_skipped"] == "no database here"


def test_transport_errors_are_counted_by_name():
    with socket.socket() as s:  # nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lam = client("lambda", endpoint_url=f"http://127.0.0.1:{port}",
                 config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    report = loadtest.run("Ch05Function", remote.invoker(lam, NAME), None, Account, [1, 2],
                          iters=2)
    assert dict(report.errors) == {"EndpointConnectionError": 2}


def local_lambda(lambda_client, handler) -> None:
    """Answer each Invoke of this client by running ``handler`` in-process, as Lambda would:
    the JSON payload in, the response or ``FunctionError`` and the error's shape out."""

    def answer(params, **kwargs):
        event = json.loads(params["body"])
        try:
            body, error = handler(event, None), None
        except Exception as exc:  # noqa: BLE001 - reported the way Lambda reports it
            body, error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}, "Unhandled"
        parsed = {"StatusCode": 200, "Payload": payload(body)}
        if error:
            parsed["FunctionError"] = error
        return AWSResponse("https://lambda.invalid", 200, {}, None), parsed

    lambda_client.meta.events.register("before-call.lambda.Invoke", answer)


def test_with_a_reachable_database_money_and_ledger_are_checked(engine, make_accounts):
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.handlers import ch05

    ids = make_accounts(5, balance=3)
    lam = client("lambda")
    local_lambda(lam, ch05.handler)
    report = loadtest.run("Ch05Function", remote.invoker(lam, NAME), SqlAlchemyUnitOfWork,
                          Account, ids, iters=40, threads=4, seed=11)
    assert report.checked and report.conserved and report.ledger_complete
    assert report.balance_before == report.balance_after == Decimal(15)
    assert report.successes >= 1 and report.in_ledger == report.successes
    assert report.successes + sum(report.errors.values()) == 40
    assert set(report.errors) <= {"InsufficientFunds"}


def test_remote_checks_are_skipped_without_a_database(monkeypatch):
    for name in ("DATABASE_URL", "CLUSTER_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    settings.get_settings.cache_clear()
    try:
        factory, reason = commands.remote_checks()
    finally:
        settings.get_settings.cache_clear()
    assert factory is None and "set CLUSTER_ENDPOINT" in reason


def test_remote_checks_say_why_an_unreachable_database_is_skipped(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{port}/x")
    settings.get_settings.cache_clear()
    database.install_engine(None)
    try:
        factory, reason = commands.remote_checks()
    finally:
        settings.get_settings.cache_clear()
        database.install_engine(None)
    assert factory is None and reason.startswith("the database did not answer (")


@pytest.mark.parametrize("args, message", [
    (["--function", "ch05", "--remote"], "needs --stack NAME or --function-name NAME"),
    (["--function", "ch05", "--stack", "bank"], "go with --remote"),
])
def test_cli_refuses_a_remote_run_without_its_target(capsys, monkeypatch, args, message):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert main(["loadtest", *args]) == 1
    assert message in capsys.readouterr().err
