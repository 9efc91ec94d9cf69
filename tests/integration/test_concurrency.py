"""Real threads, real conflicts: optimistic concurrency on a hot set of accounts.

Conflicts must actually happen in these tests: each one checks that some did.
"""

import random
import threading
import uuid
from collections import Counter, defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from bank.handlers import ch04, ch05, ch06
from bank.kit import local
from bank.kit.cli.invoke import LocalContext, resolve
from tests.conftest import balances

THREADS = 8
TRANSFERS_PER_THREAD = 60


def hammer(handler, ids, seed, context_fn=None, messages=None):
    """THREADS threads of random transfers; returns (responses, errors by type). The errors'
    texts are appended to ``messages`` if given."""
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
                    if messages is not None:
                        messages.append((type(exc).__name__, str(exc)))

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
    messages: list[tuple[str, str]] = []
    responses, errors = hammer(ch04.handler, ids, seed=2, messages=messages)
    assert errors["TransactionConflict"] > 0, errors
    if local.strict():
        # Raised at COMMIT, as on DSQL: strict mode's OC000 is the COMMIT's (no statement
        # fails for a conflict there, nor waits for another transaction).
        conflicts = [text for name, text in messages if name == "TransactionConflict"]
        assert all("(OC000)" in text for text in conflicts), conflicts[:3]
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



ACCOUNTS = 5
operation = st.tuples(
    st.integers(0, ACCOUNTS - 1),  # payer
    st.integers(0, ACCOUNTS - 1),  # payee
    st.integers(1, 4000),  # cents
    st.one_of(st.none(), st.integers(0, 1000)),  # a replay of an earlier request, or new
)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=8, max_size=40), threads=st.integers(2, 6))
def test_concurrent_transfers_and_replays_apply_each_transfer_once(make_accounts, ops, threads):
    """Threads send transfers and replays of earlier ones (same transfer_id) at once:
    money is conserved, no balance goes negative, every acknowledged transfer is in the
    ledger exactly once, and every reply to a transfer_id carries its first outcome."""
    ids = make_accounts(ACCOUNTS, balance=50)
    events: list[dict] = []
    for payer, payee, cents, replay in ops:
        if replay is not None and events:
            events.append(events[replay % len(events)])
        elif payer != payee:
            events.append({"payer_id": ids[payer], "payee_id": ids[payee],
                           "amount": f"{cents // 100}.{cents % 100:02d}",
                           "transfer_id": str(uuid.uuid4())})
    replies: dict[str, list] = defaultdict(list)
    refused: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker(n: int) -> None:
        barrier.wait()  # all at once: the most contention
        for event in events[n::threads]:
            try:
                response = ch05.handler(event, LocalContext(resolve("ch05")))
            except Exception as exc:  # noqa: BLE001 - counted by type
                with lock:
                    refused[type(exc).__name__] += 1
            else:
                with lock:
                    replies[event["transfer_id"]].append(response)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()

    assert set(refused) <= {"InsufficientFunds"}, refused
    after = balances(_engine(), ids)
    assert sum(after.values()) == Decimal(50 * ACCOUNTS)
    assert min(after.values()) >= 0
    with _engine().connect() as conn:
        rows = conn.execute(
            text("SELECT id::text, payer_id, payee_id, amount, payer_balance FROM transfers "
                 "WHERE payer_id = ANY(:ids)"), {"ids": [str(i) for i in ids]}).all()
    ledger = {row[0]: row for row in rows}
    assert len(ledger) == len(rows)  # once each: the id is the key
    assert set(replies) == set(ledger)  # acknowledged <=> recorded
    for transfer_id, responses in replies.items():
        assert {r["payer_balance"] for r in responses} == {f"{ledger[transfer_id][4]:.6f}"}
        assert sum(not r.get("replayed") for r in responses) == 1  # applied by exactly one
    # The balances are the ledger's sum: each recorded transfer applied once, no other.
    moved = defaultdict(Decimal)
    for _, payer, payee, amount, _balance in rows:
        moved[payer] -= amount
        moved[payee] += amount
    assert after == {i: Decimal(50) + moved[str(i)] for i in ids}


def _engine():
    from bank.adapters.database import get_engine

    return get_engine()
