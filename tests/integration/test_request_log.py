"""The request log: one JSON line per invocation (``bank.handlers.common.logged``)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from bank.domain.errors import InsufficientFunds
from bank.handlers import ch01, ch05
from bank.handlers.common import logged


class Context:
    function_name = "bank-Ch05Function-abc"
    aws_request_id = "6f0c8f0e-1111-2222-3333-444455556666"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def lines(caplog) -> list[tuple[int, dict]]:
    return [(r.levelno, json.loads(r.getMessage()))
            for r in caplog.records if r.name == "bank.requests"]


@pytest.fixture()
def log(caplog):
    caplog.set_level(logging.INFO, logger="bank")
    return caplog


def test_success_is_one_line_with_the_request_fields(log):
    assert ch01.handler({"name": "reinvent"}, Context()) == {"greeting": "hello reinvent"}
    [(level, line)] = lines(log)
    assert level == logging.INFO
    assert list(line) == ["function", "request_id", "outcome", "latency_ms"]
    assert line["function"] == Context.function_name
    assert line["request_id"] == Context.aws_request_id
    assert line["outcome"] == "ok"
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0


def test_an_error_is_logged_by_its_error_type_and_raised(log):
    with pytest.raises(Exception) as info:
        ch01.handler({"name": 42})
    [(level, line)] = lines(log)
    assert line["outcome"] == type(info.value).__name__ == "InvalidRequest"
    assert level == logging.INFO  # a refused request is an outcome, not a fault
    assert line["function"] == "ch01" and line["request_id"] is None  # no Lambda context


def test_attempts_and_nothing_of_the_event(log, seeded):
    event = {"payer_id": 1, "payee_id": 2, "amount": "0.01"}
    response = ch05.handler(event, Context())
    [(_, line)] = lines(log)
    assert line["outcome"] == "ok" and line["attempts"] == response["attempts"] >= 1
    text = "\n".join(r.getMessage() for r in log.records)
    assert "0.01" not in text and response["transfer_id"] not in text
    assert "password" not in text.lower() and "X-Amz" not in text


def test_attempts_of_an_error_that_carries_them(log):
    from bank.services.errors import ConflictRetriesExhausted

    @logged
    def exhausted(event, context=None):
        raise ConflictRetriesExhausted("every attempt conflicted", attempts=10)

    with pytest.raises(ConflictRetriesExhausted):
        exhausted({})
    [(_, line)] = lines(log)
    assert line["outcome"] == "ConflictRetriesExhausted" and line["attempts"] == 10


def test_a_bug_is_logged_at_error_level(log):
    @logged
    def broken(event, context=None):
        raise KeyError("oops")

    with pytest.raises(KeyError):
        broken({})
    [(level, line)] = lines(log)
    assert level == logging.ERROR and line["outcome"] == "KeyError"


def test_an_error_answered_in_the_response_is_the_outcome(log):
    @logged
    def custom_resource(event, context=None):
        return {"Status": "FAILED", "errorType": "DatabaseUnavailable"}

    custom_resource({})
    [(_, line)] = lines(log)
    assert line["outcome"] == "DatabaseUnavailable"


def test_business_errors_are_logged_below_warning(log):
    log.set_level(logging.WARNING, logger="bank")

    @logged
    def refused(event, context=None):
        raise InsufficientFunds("Insufficient balance: 1.00")

    with pytest.raises(InsufficientFunds):
        refused({})
    assert lines(log) == []


def test_the_line_is_a_json_object_for_lambdas_json_logs(log):
    """Lambda's JSON log format writes a dict message as a JSON object; elsewhere the same
    record prints as one line of JSON."""
    ch01.handler({"name": "reinvent"}, Context())
    [record] = [r for r in log.records if r.name == "bank.requests"]
    assert isinstance(record.msg, dict) and not record.args
    assert json.loads(record.getMessage()) == record.msg


def test_no_level_of_its_own(monkeypatch):
    """The level is Lambda's (LoggingConfig's ApplicationLogLevel sets the root logger):
    importing the handlers sets none, whatever the environment says."""
    code = ("import logging, bank.handlers.ch05; "
            "print(logging.getLogger('bank.requests').level, "
            "logging.getLogger('bank').level)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"}, check=True)
    assert out.stdout.split() == ["0", "0"]  # NOTSET: inherited


def test_in_lambda_each_invocation_writes_its_metrics(log, capsys, monkeypatch, seeded):
    """The Embedded Metric Format, on standard output: CloudWatch makes metrics of it, so
    that a conflict rate can be graphed per function (Conflicts / Attempts)."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", Context.function_name)
    ch05.handler({"payer_id": 1, "payee_id": 2, "amount": "0.01"}, Context())
    with pytest.raises(InsufficientFunds):
        ch05.handler({"payer_id": 1, "payee_id": 2, "amount": "1000000"}, Context())
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(documents) == 2
    ok, refused = documents
    [directive] = ok["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "bank" and directive["Dimensions"] == [["FunctionName"]]
    names = {m["Name"] for m in directive["Metrics"]}
    assert {"Requests", "Errors", "Attempts", "Conflicts", "Latency"} <= names
    assert all(name in ok for name in names)  # every metric has its value
    assert ok["FunctionName"] == Context.function_name and ok["Requests"] == 1
    assert ok["Errors"] == 0 and ok["Attempts"] >= 1 and ok["Conflicts"] >= 0
    assert refused["Errors"] == 1 and refused["outcome"] == "InsufficientFunds"
    [line] = [json.loads(r.getMessage()) for r in log.records if r.name == "bank.requests"][:1]
    assert "conflicts" in line


def test_outside_lambda_no_metrics_are_written(capsys):
    ch01.handler({"name": "reinvent"}, Context())
    assert capsys.readouterr().out == ""
