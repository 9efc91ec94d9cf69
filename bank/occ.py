"""Optimistic-concurrency retry (ch05, ch06).

Aurora DSQL checks for conflicts at COMMIT and reports them as SQLSTATE 40001
(``OC000`` for data, ``OC001`` for a schema changed underneath). Local PostgreSQL at
REPEATABLE READ raises 40001 too (at the conflicting statement), and may report a
deadlock (40P01). Those, and only those, are retried: always the whole transaction,
on a fresh transaction, a capped number of times, with exponential backoff and full
jitter, and never past the caller's deadline (a Lambda's remaining time).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bank.errors import ConflictRetriesExhausted

T = TypeVar("T")

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, bare or wrapped by SQLAlchemy (``.orig``).

    Not followed: ``__cause__``. ``ConflictRetriesExhausted`` is raised from a 40001
    but is itself final; an outer loop must not retry it.
    """
    for candidate in (exc, getattr(exc, "orig", None)):
        state = getattr(candidate, "sqlstate", None)
        if state:
            return str(state)
    return None


def is_conflict(exc: BaseException) -> bool:
    return sqlstate(exc) in RETRYABLE_SQLSTATES


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    base_delay_s: float = 0.005
    max_delay_s: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")

    @classmethod
    def from_settings(cls, settings) -> RetryPolicy:
        return cls(settings.occ_max_attempts, settings.occ_base_delay_s, settings.occ_max_delay_s)

    def backoff_cap(self, attempt: int) -> float:
        """Upper bound of the sleep after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, cap]; spreads retrying clients apart."""
        return (rng or random).uniform(0.0, self.backoff_cap(attempt))


def run_with_retry(
    transaction: Callable[[], T],
    policy: RetryPolicy,
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> tuple[T, int]:
    """Run ``transaction`` until it commits; return its result and the attempts it took.

    ``transaction`` must open and commit a fresh transaction each call. ``deadline``
    is a ``clock()`` value after which no new attempt starts.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return transaction(), attempt
        except Exception as exc:
            if not is_conflict(exc):
                raise
            if attempt >= policy.max_attempts:
                raise ConflictRetriesExhausted(
                    f"transaction conflicted {attempt} times (SQLSTATE {sqlstate(exc)}); "
                    "giving up, retry later",
                    attempts=attempt,
                ) from exc
            pause = policy.delay(attempt, rng)
            if deadline is not None and clock() + pause >= deadline:
                raise ConflictRetriesExhausted(
                    f"transaction conflicted {attempt} times (SQLSTATE {sqlstate(exc)}) and "
                    "the time left is too short for another attempt; retry later",
                    attempts=attempt,
                ) from exc
            sleep(pause)
