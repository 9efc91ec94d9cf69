"""The one retry loop: cap, backoff bounds, deadline, and what is (not) retried.

Failures are raised as the named errors the adapters translate driver errors into
(``tests/unit/test_dberrors.py`` checks that translation on real driver errors); no database
is involved here.
"""

import random
import threading

import pytest

from bank.adapters.errors import (
    CommitOutcomeUnknown,
    DatabaseError,
    DatabaseTimeout,
    DatabaseUnavailable,
    TransactionConflict,
)
from bank.domain.errors import InsufficientFunds
from bank.services.errors import ConflictRetriesExhausted
from bank.services.retry import Interrupted, RetryPolicy, run


def failing(times, exc_factory=lambda: TransactionConflict("OC000")):
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
    result, attempts = run(txn, RetryPolicy(10, 0.01, 1), sleep=no_sleep(sleeps))
    assert (result, attempts, len(calls), len(sleeps)) == ("committed", 4, 4, 3)


def test_ch04_policy_reports_the_conflict_instead():
    txn, calls = failing(1)
    with pytest.raises(TransactionConflict):
        run(txn, RetryPolicy(retry_conflicts=False), sleep=lambda s: None)
    assert len(calls) == 1


def test_a_dead_connection_is_replaced_at_once_then_backed_off():
    txn, calls = failing(3, lambda: DatabaseUnavailable("connection lost"))
    sleeps = []
    assert run(txn, RetryPolicy(10, 0.01, 1), sleep=no_sleep(sleeps))[1] == 4
    # the first retry does not sleep ...
    assert len(sleeps) == 2  # ... the next ones do


def test_unavailability_beyond_the_cap_is_raised_as_is():
    txn, calls = failing(100, lambda: DatabaseUnavailable("down"))
    with pytest.raises(DatabaseUnavailable):
        run(txn, RetryPolicy(max_attempts=3), sleep=lambda s: None)
    assert len(calls) == 3


@pytest.mark.parametrize("exc", [
    InsufficientFunds("no"), DatabaseTimeout("slow"), DatabaseError("refused", "42501"),
    ValueError("boom"),
])
def test_other_errors_are_not_retried(exc):
    def txn():
        calls.append(1)
        raise exc

    calls = []
    with pytest.raises(type(exc)):
        run(txn, RetryPolicy(), sleep=lambda s: None)
    assert len(calls) == 1


def test_attempts_are_capped_with_a_named_retryable_error():
    txn, calls = failing(100)
    with pytest.raises(ConflictRetriesExhausted) as info:
        run(txn, RetryPolicy(max_attempts=5), sleep=lambda s: None)
    assert len(calls) == 5 and info.value.attempts == 5
    assert info.value.retryable and info.value.applied is False
    assert isinstance(info.value.__cause__, TransactionConflict)


@pytest.mark.parametrize("committed", [True, False])
def test_a_lost_commit_is_settled_not_guessed(committed):
    """settle() says whether it committed: its outcome is returned, or the work runs again."""
    txn, calls = failing(1, lambda: CommitOutcomeUnknown("reply lost"))
    settled = []

    def settle(exc):
        settled.append(exc)
        return "found in the ledger" if committed else None

    result, attempts = run(txn, RetryPolicy(), settle=settle, sleep=lambda s: None)
    assert len(settled) == 1
    assert (result, attempts) == (("found in the ledger", 1) if committed else ("committed", 2))


def test_a_lost_commit_without_a_way_to_settle_it_is_raised():
    txn, calls = failing(1, lambda: CommitOutcomeUnknown("reply lost"))
    with pytest.raises(CommitOutcomeUnknown) as info:
        run(txn, RetryPolicy(), sleep=lambda s: None)
    assert info.value.applied is None and len(calls) == 1


def test_backoff_is_exponential_capped_and_jittered():
    policy = RetryPolicy(max_attempts=20, base_delay_s=0.01, max_delay_s=0.3)
    assert [policy.backoff_cap(n) for n in (1, 2, 3, 4, 5, 6)] == [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.3,
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
    run(txn, policy, sleep=no_sleep(sleeps), rng=random.Random(1))
    assert all(s <= policy.backoff_cap(i + 1) for i, s in enumerate(sleeps))


def test_deadline_stops_retrying_before_the_lambda_times_out():
    now = [100.0]

    def sleep(s):
        now[0] += s

    txn, calls = failing(1000)
    policy = RetryPolicy(max_attempts=1000, base_delay_s=0.5, max_delay_s=0.5)
    with pytest.raises(ConflictRetriesExhausted, match="no time left"):
        run(txn, policy, deadline=102.0, clock=lambda: now[0], sleep=sleep, rng=random.Random(3))
    assert now[0] < 102.0  # never slept past the deadline
    assert 1 < len(calls) < 1000


def test_stop_while_waiting_interrupts():
    txn, calls = failing(1)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted):
        run(txn, RetryPolicy(base_delay_s=1, max_delay_s=1), stop=stop)
    assert len(calls) == 1


def test_policy_validation():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_s=1, max_delay_s=0.5)


def test_exhausted_retries_are_final_for_an_outer_loop():
    inner = lambda: run(failing(100)[0], RetryPolicy(max_attempts=2), sleep=lambda s: None)  # noqa: E731
    calls = []

    def outer():
        calls.append(1)
        return inner()

    with pytest.raises(ConflictRetriesExhausted):
        run(outer, RetryPolicy(), sleep=lambda s: None)
    assert len(calls) == 1
