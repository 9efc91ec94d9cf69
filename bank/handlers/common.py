"""What the handlers share: the unit of work, the retry policy, the deadline, the response."""

from __future__ import annotations

import time
from typing import Any

from bank.adapters.settings import get_settings
from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
from bank.services.retry import RetryPolicy
from bank.services.transfers import TransferResult

#: The unit of work of every handler: a fresh one per attempt, over the process-wide
#: engine that a warm container reuses.
UnitOfWork = SqlAlchemyUnitOfWork

# Leave this much of the Lambda's time for answering after the last attempt.
DEADLINE_MARGIN_S = 1.0


def deadline_from(context: Any) -> float | None:
    """A ``time.monotonic()`` deadline from the Lambda context's remaining time."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return time.monotonic() + remaining() / 1000.0 - DEADLINE_MARGIN_S


def retry_policy(**overrides: Any) -> RetryPolicy:
    return RetryPolicy.from_settings(get_settings(), **overrides)


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
