"""What the handlers share: the request log, the unit of work, the retry policy, the deadline,
the response.

``UnitOfWork`` is imported on first use (PEP 562 ``__getattr__``), so that a handler without
a database (ch01) does not pay SQLAlchemy's and psycopg's import at cold start.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from bank.adapters.deadline import LONGEST_OVERRUN_S
from bank.adapters.settings import get_settings
from bank.domain.errors import BankError
from bank.services.retry import RetryPolicy

if TYPE_CHECKING:
    from bank.domain.model import AccountKind
    from bank.services.transfers import TransferResult

# Leave this much of the Lambda's time for answering after the last attempt: more than a
# wait on the database can outlast its deadline (a silent server's socket is cut by then).
DEADLINE_MARGIN_S = 1.0
assert DEADLINE_MARGIN_S > LONGEST_OVERRUN_S + 0.25, "no time left to answer"

#: One line per request (``logged``). Its level is Lambda's: the template's
#: ``LoggingConfig`` (``ApplicationLogLevel``) sets the root logger's, which this inherits.
request_log = logging.getLogger("bank.requests")
#: CloudWatch namespace of the metrics each invocation writes in Lambda (``metrics``).
METRICS_NAMESPACE = "bank"
#: What a handler adds to its request's line and metrics (``note``), per invocation.
_noted: ContextVar[dict[str, Any] | None] = ContextVar("bank_noted", default=None)


class LogLine(dict):
    """The request line's fields. Lambda's JSON log format writes a ``dict`` message as a
    JSON object (its ``message``); anywhere else it prints as one line of JSON."""

    def __str__(self) -> str:
        return json.dumps(self)


def note(**fields: Any) -> None:
    """Add ``fields`` (e.g. ``conflicts``) to this invocation's line and metrics."""
    noted = _noted.get()
    if noted is not None:
        noted.update(fields)


def logged(handler: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
    """Log one line per invocation of ``handler``, through the ``logging`` module.

    Fields: ``function`` and ``request_id`` (from the Lambda context), ``outcome`` (``ok``
    or the ``errorType`` Lambda reports: the exception's class name), ``attempts`` when the
    response or the error carries them, ``conflicts`` when the handler noted them,
    ``latency_ms``. Never the event, a token, a password or SQL parameters. A handler that
    reports an error in its response instead of raising (the migration custom resource
    must always answer) names it as ``errorType``. Level INFO; ERROR for an exception that
    is not a ``BankError`` (a bug). In Lambda it also writes the invocation's metrics
    (``metrics``).
    """
    default_name = name or handler.__module__.rpartition(".")[2]

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any = None) -> Any:
        began = time.perf_counter()
        token = _noted.set({})
        try:
            try:
                response = handler(event, context)
            except Exception as exc:
                level = logging.INFO if isinstance(exc, BankError) else logging.ERROR
                _log(level, context, default_name, began, type(exc).__name__,
                     getattr(exc, "attempts", None))
                raise
            details = response if isinstance(response, dict) else {}
            _log(logging.INFO, context, default_name, began, details.get("errorType") or "ok",
                 details.get("attempts"))
            return response
        finally:
            _noted.reset(token)

    return wrapper


def _log(level: int, context: Any, default_name: str, began: float, outcome: str,
         attempts: Any) -> None:
    line = LogLine(function=getattr(context, "function_name", None) or default_name,
                   request_id=getattr(context, "aws_request_id", None), outcome=outcome)
    if isinstance(attempts, int):
        line["attempts"] = attempts
    line.update(_noted.get() or {})
    line["latency_ms"] = round((time.perf_counter() - began) * 1000, 3)
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        metrics(line)
    if request_log.isEnabledFor(level):
        # The record is made directly: ``Logger.log`` would also walk the stack to find the
        # caller's file and line, always this function: work for nothing on every request.
        request_log.handle(request_log.makeRecord(request_log.name, level, __file__, 0,
                                                  line, (), None, "_log"))


def metrics(line: dict[str, Any]) -> None:
    """The invocation's metrics, in CloudWatch's Embedded Metric Format: one JSON line on
    standard output, which CloudWatch Logs turns into metrics of ``METRICS_NAMESPACE``, by
    ``FunctionName``: ``Requests``, ``Errors``, ``Attempts``, ``Conflicts`` (the OCC
    conflicts of this request: a conflict rate is Conflicts / Attempts) and ``Latency``."""
    names = [("Requests", "Count"), ("Errors", "Count"), ("Latency", "Milliseconds")]
    values: dict[str, Any] = {"Requests": 1, "Errors": int(line["outcome"] != "ok"),
                              "Latency": line["latency_ms"]}
    for field, metric in (("attempts", "Attempts"), ("conflicts", "Conflicts")):
        if isinstance(line.get(field), int):
            names.append((metric, "Count"))
            values[metric] = line[field]
    document = {
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": METRICS_NAMESPACE, "Dimensions": [["FunctionName"]],
            "Metrics": [{"Name": n, "Unit": u} for n, u in names]}]},
        "FunctionName": line["function"], "outcome": line["outcome"], **values,
    }
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def __getattr__(name: str) -> Any:
    if name == "UnitOfWork":
        # The unit of work of every database handler: a fresh one per attempt, over the
        # process-wide engine that a warm container reuses.
        from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork

        return SqlAlchemyUnitOfWork
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def deadline_from(context: Any) -> float | None:
    """A ``time.monotonic()`` deadline from the Lambda context's remaining time."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return time.monotonic() + remaining() / 1000.0 - DEADLINE_MARGIN_S


def retry_policy(**overrides: Any) -> RetryPolicy:
    return RetryPolicy.from_settings(get_settings(), **overrides)


def transfer_handler(name: str, kind: AccountKind, *, retry_conflicts: bool = True,
                     uuid_ids: bool = False) -> Callable[..., dict]:
    """The Lambda handler of a transfer chapter (ch04, ch05, ch06), logged as ``name``.

    It parses the event, runs the transfer service on ``kind`` of account, one unit of work
    per attempt, and answers. ``retry_conflicts=False`` (ch04) reports a conflict as
    ``TransactionConflict`` and leaves ``attempts`` out of the response; ``uuid_ids``
    (ch06) takes the ids as UUID strings.
    """
    from bank.adapters.errors import TransactionConflict
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.domain.requests import parse_transfer
    from bank.services.errors import ConflictRetriesExhausted
    from bank.services.transfers import transfer

    def handler(event: Any, context: Any = None) -> dict:
        request = parse_transfer(event, uuid_ids=uuid_ids)
        try:
            result = transfer(SqlAlchemyUnitOfWork, kind, request,
                              policy=retry_policy(retry_conflicts=retry_conflicts),
                              deadline=deadline_from(context))
        except (TransactionConflict, ConflictRetriesExhausted) as exc:
            note(conflicts=getattr(exc, "attempts", 1))  # every attempt conflicted
            raise
        note(conflicts=result.conflicts)
        return transfer_response(result, with_attempts=retry_conflicts)

    return logged(handler, name)


def transfer_response(result: TransferResult, with_attempts: bool) -> dict:
    response: dict[str, Any] = {
        "payer_balance": str(result.payer_balance),
        "transaction_time": f"{result.seconds * 1000:.3f}ms",
        "transfer_id": str(result.transfer_id),
    }
    if with_attempts:
        response["attempts"] = result.attempts
    if result.replayed:
        response["replayed"] = True
    return response
