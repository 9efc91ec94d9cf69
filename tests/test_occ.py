"""Retry policy: cap, backoff bounds, deadline, and what is (not) retried.

Conflicts are injected as the real psycopg exception classes (SQLSTATE 40001/40P01)
raised by the transaction callable; the database is not involved here.
"""

import random

import psycopg.errors
import pytest
from sqlalchemy.exc import OperationalError

from bank.errors import ConflictRetriesExhausted
from bank.occ import RetryPolicy, is_conflict, run_with_retry, sqlstate


def failing(times, exc_factory=lambda: psycopg.errors.SerializationFailure("OC000")):
    calls = []

    def transaction():
        calls.append(1)
        if len(calls) <= times:
            raise exc_factory()
        return "committed"

    return transaction, calls


def no_sleep(log):
    return lambda s: log.append(s)


def test_retries_until_commit_and_counts_attempts():
    txn, calls = failing(3)
    sleeps = []
    result, attempts = run_with_retry(txn, RetryPolicy(10, 0.01, 1), sleep=no_sleep(sleeps))
    assert (result, attempts, len(calls), len(sleeps)) == ("committed", 4, 4, 3)


def test_wrapped_sqlalchemy_errors_are_recognised():
    wrapped = lambda: OperationalError("UPDATE", {}, psycopg.errors.SerializationFailure())  # noqa: E731
    txn, _ = failing(1, wrapped)
    assert run_with_retry(txn, RetryPolicy(), sleep=lambda s: None)[1] == 2
    assert sqlstate(wrapped()) == "40001"


def test_deadlock_is_retried():
    txn, _ = failing(1, lambda: psycopg.errors.DeadlockDetected())
    assert run_with_retry(txn, RetryPolicy(), sleep=lambda s: None)[1] == 2


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.errors.UniqueViolation(),
        psycopg.errors.FeatureNotSupported(),
        ValueError("boom"),
        psycopg.errors.QueryCanceled(),
    ],
)
def test_other_errors_are_not_retried(exc):
    def txn():
        calls.append(1)
        raise exc

    calls = []
    with pytest.raises(type(exc)):
        run_with_retry(txn, RetryPolicy(), sleep=lambda s: None)
    assert len(calls) == 1
    assert not is_conflict(exc)


def test_attempts_are_capped_with_a_named_retryable_error():
    txn, calls = failing(100)
    with pytest.raises(ConflictRetriesExhausted) as info:
        run_with_retry(txn, RetryPolicy(max_attempts=5), sleep=lambda s: None)
    assert len(calls) == 5 and info.value.attempts == 5
    assert info.value.retryable
    assert isinstance(info.value.__cause__, psycopg.errors.SerializationFailure)


def test_backoff_is_exponential_capped_and_jittered():
    policy = RetryPolicy(max_attempts=20, base_delay_s=0.01, max_delay_s=0.3)
    assert [policy.backoff_cap(n) for n in (1, 2, 3, 4, 5, 6)] == [
        0.01,
        0.02,
        0.04,
        0.08,
        0.16,
        0.3,
    ]
    rng = random.Random(7)
    for attempt in range(1, 20):
        samples = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= s <= policy.backoff_cap(attempt) for s in samples)
        assert len(set(samples)) > 100  # jitter: not one fixed sleep


def test_sleeps_follow_the_policy():
    txn, _ = failing(6)
    sleeps = []
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.01, max_delay_s=0.05)
    run_with_retry(txn, policy, sleep=no_sleep(sleeps), rng=random.Random(1))
    assert all(s <= policy.backoff_cap(i + 1) for i, s in enumerate(sleeps))


def test_deadline_stops_retrying_before_the_lambda_times_out():
    now = [100.0]
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    txn, calls = failing(1000)
    policy = RetryPolicy(max_attempts=1000, base_delay_s=0.5, max_delay_s=0.5)
    with pytest.raises(ConflictRetriesExhausted, match="time left"):
        run_with_retry(
            txn, policy, deadline=102.0, clock=lambda: now[0], sleep=sleep, rng=random.Random(3)
        )
    assert now[0] < 102.0  # never slept past the deadline
    assert 1 < len(calls) < 1000


def test_policy_validation():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_s=1, max_delay_s=0.5)


def test_exhausted_retries_are_final_for_an_outer_loop():
    txn, _ = failing(100)
    with pytest.raises(ConflictRetriesExhausted) as info:
        run_with_retry(txn, RetryPolicy(max_attempts=2), sleep=lambda s: None)
    assert not is_conflict(info.value)
