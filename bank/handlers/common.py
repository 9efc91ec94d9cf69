"""What the handlers share: the response shape and the Lambda deadline."""

from __future__ import annotations

import time
from typing import Any

from bank.transfers import TransferResult

# Leave this much of the Lambda's time for answering after the last attempt.
DEADLINE_MARGIN_S = 1.0


def deadline_from(context: Any) -> float | None:
    """A ``time.monotonic()`` deadline from the Lambda context's remaining time."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return time.monotonic() + remaining() / 1000.0 - DEADLINE_MARGIN_S


def transfer_response(result: TransferResult, with_attempts: bool) -> dict:
    response: dict[str, Any] = {
        "payer_balance": str(result.payer_balance),
        "transaction_time": f"{result.seconds * 1000:.3f}ms",
    }
    if with_attempts:
        response["attempts"] = result.attempts
    return response
