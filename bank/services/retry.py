"""The one retry loop of the project: the whole unit of work again, when that is safe.

Aurora DSQL checks for conflicts at COMMIT and reports them as SQLSTATE 40001 (``OC000``
for data, ``OC001`` for a schema changed underneath), and so does local PostgreSQL in DSQL
strict mode; without it, PostgreSQL at REPEATABLE READ raises 40001 at the conflicting
statement after waiting, and may report a deadlock (40P01) or give up a lock wait (55P03).
All arrive here as ``TransactionConflict``. What is retried:

- ``TransactionConflict``, unless the policy says not to (ch04 reports it, as the tutorial
  teaches): the transaction rolled back, so running it again is safe;
- ``DatabaseUnavailable``: the connection failed before COMMIT, nothing was applied. The
  first retry is immediate: a pooled connection found dead (a restarted server, a thawed
  Lambda) has been replaced, and the request should not fail for it;
- ``CommitOutcomeUnknown``: the connection failed during COMMIT. ``settle`` looks the
  work up: it returns the outcome if the transaction committed, or None if it did not,
  and then the work runs again.

Every attempt is a fresh unit of work (``attempt`` must open its own). Attempts are
capped, the pauses grow exponentially with full jitter, and no attempt starts past the
caller's ``deadline`` (a Lambda's remaining time).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from bank.adapters.errors import CommitOutcomeUnknown, DatabaseUnavailable, TransactionConflict
from bank.services.errors import ConflictRetriesExhausted

T = TypeVar("T")


class Interrupted(Exception):
    """``stop`` was set while waiting to retry: the failed attempt applied nothing."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    base_delay_s: float = 0.005
    max_delay_s: float = 0.5
    retry_conflicts: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")

    @classmethod
    def from_settings(cls, settings, **overrides) -> RetryPolicy:
        policy = cls(settings.occ_max_attempts, settings.occ_base_delay_s,
                     settings.occ_max_delay_s)
        return replace(policy, **overrides) if overrides else policy

    def backoff_cap(self, attempt: int) -> float:
        """Upper bound of the pause after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, cap]; spreads retrying clients apart."""
        return (rng or random).uniform(0.0, self.backoff_cap(attempt))


def run(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    deadline: float | None = None,
    settle: Callable[[CommitOutcomeUnknown], T | None] | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> tuple[T, int]:
    """Run ``attempt`` until it succeeds; its result and the number of attempts it took."""
    number = 0
    reconnected = False
    while True:
        number += 1
        try:
            return attempt(), number
        except TransactionConflict as exc:
            if not policy.retry_conflicts:
                raise
            failure: Exception = exc
            pause = policy.delay(number, rng)
        except DatabaseUnavailable as exc:
            failure = exc
            pause = 0.0 if not reconnected else policy.delay(number, rng)
            reconnected = True
        except CommitOutcomeUnknown as exc:
            if settle is None:
                raise
            outcome = settle(exc)
            if outcome is not None:
                return outcome, number
            failure, pause = exc, 0.0  # it did not commit: run it again
        if number >= policy.max_attempts or (
            deadline is not None and clock() + pause >= deadline
        ):
            if isinstance(failure, TransactionConflict):
                why = "no time left for another attempt" if number < policy.max_attempts else (
                    "giving up")
                raise ConflictRetriesExhausted(
                    f"transaction conflicted {number} times ({failure}); {why}, retry later",
                    attempts=number,
                ) from failure
            raise failure
        if stop is not None:
            if stop.wait(pause):
                raise Interrupted() from failure
        elif pause:
            sleep(pause)
