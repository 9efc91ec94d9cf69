"""Real threads, real conflicts: optimistic concurrency on a hot set of 10 accounts."""

import random
import threading
from collections import Counter
from decimal import Decimal

from bank.cli.invoke import LocalContext, resolve
from bank.handlers import ch04, ch05, ch06
from tests.conftest import balances

THREADS = 8
TRANSFERS_PER_THREAD = 60


def hammer(handler, ids, seed, context_fn=None):
    """THREADS threads of random transfers; returns (responses, errors by type)."""
    responses, errors = [], Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker(n):
        rng = random.Random(seed * 100 + n)
        barrier.wait()  # start together: maximum contention
        for _ in range(TRANSFERS_PER_THREAD):
            payer, payee = rng.sample(ids, 2)
            event = {"payer_id": payer, "payee_id": payee,
                     "amount": f"{rng.randint(1, 1000) / 100:.2f}"}
            try:
                response = handler(event, context_fn() if context_fn else None)
                with lock:
                    responses.append(response)
            except Exception as exc:  # noqa: BLE001 - counted by type
                with lock:
                    errors[type(exc).__name__] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return responses, errors


def test_ch05_retries_conflicts_and_conserves_money(make_accounts):
    ids = make_accounts(10, balance=100)
    responses, errors = hammer(ch05.handler, ids, seed=1,
                               context_fn=lambda: LocalContext(resolve("ch05")))
    after = balances(_engine(), ids)
    assert sum(after.values()) == Decimal(1000)
    assert all(b >= 0 for b in after.values())
    # Conflicts really happened, and were retried away.
    attempts = Counter(r["attempts"] for r in responses)
    assert any(a > 1 for a in attempts), attempts
    assert "TransactionConflict" not in errors and "ConflictRetriesExhausted" not in errors
    # Only refusals for money that is not there, none for anything else.
    assert set(errors) <= {"InsufficientFunds"}
    assert len(responses) + sum(errors.values()) == THREADS * TRANSFERS_PER_THREAD


def test_ch04_under_the_same_load_reports_conflicts(make_accounts):
    ids = make_accounts(10, balance=100)
    responses, errors = hammer(ch04.handler, ids, seed=2)
    assert errors["TransactionConflict"] > 0, errors
    after = balances(_engine(), ids)
    assert sum(after.values()) == Decimal(1000)
    assert all(b >= 0 for b in after.values())
    assert set(errors) <= {"TransactionConflict", "InsufficientFunds"}


def test_ch06_uuid_accounts_under_contention(make_uuid_accounts):
    ids = make_uuid_accounts(10, balance=100)
    responses, errors = hammer(ch06.handler, ids, seed=3)
    after = balances(_engine(), ids, table="accounts2")
    assert sum(after.values()) == Decimal(1000)
    assert all(b >= 0 for b in after.values())
    assert set(errors) <= {"InsufficientFunds"}
    assert any(r["attempts"] > 1 for r in responses)



def _engine():
    from bank.adapters.database import get_engine

    return get_engine()
