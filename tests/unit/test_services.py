"""The services on an in-memory unit of work: the transfer's outcomes, its retries, its ledger.

What a database does on its own (conflicts, lost connections, lost COMMIT replies) is
injected through the fake (``tests/fakes.py``); the same behaviours are shown on the real
server in ``test_concurrency.py``, ``test_faults.py`` and ``test_handlers.py``.
"""

from decimal import Decimal

import pytest

from bank.adapters.errors import CommitOutcomeUnknown, DatabaseUnavailable, TransactionConflict
from bank.domain.errors import AccountNotFound, InsufficientFunds, TransferIdReused
from bank.domain.model import Account, TransferRequest, UuidAccount
from bank.services.errors import TransferOutcomeUnknown
from bank.services.retry import RetryPolicy
from bank.services.seed import EXAMPLE_UUIDS, seed
from bank.services.transfers import get_balance, transfer
from tests.fakes import FakeStore

D = Decimal
FAST = RetryPolicy(max_attempts=5, base_delay_s=0, max_delay_s=0)
NO_RETRY = RetryPolicy(max_attempts=5, base_delay_s=0, max_delay_s=0, retry_conflicts=False)


@pytest.fixture
def store():
    store = FakeStore()
    seed(store.factory, accounts=3, balance=D(100))
    return store


def balances(store, kind=Account):
    return {i: a.balance for i, a in store.tables[kind.__name__].items()}


def test_a_transfer_moves_the_money_and_writes_its_ledger_entry(store):
    request = TransferRequest(1, 2, D("30"))
    result = transfer(store.factory, Account, request, policy=FAST)
    assert (result.payer_balance, result.attempts, result.replayed) == (D(70), 1, False)
    assert balances(store) == {1: D(70), 2: D(130), 3: D(100)}
    entry = store.tables["ledger"][request.transfer_id]
    assert (entry.payer_id, entry.payee_id, entry.amount, entry.payer_balance) == (
        "1", "2", D(30), D(70))


@pytest.mark.parametrize("payer, payee, amount, error, message", [
    (9, 2, "1", AccountNotFound, "Payer account not found"),
    (1, 2, "100.01", InsufficientFunds, r"Insufficient balance: -0\.01"),
    (1, 9, "1", AccountNotFound, "Payee account not found"),
])
def test_a_broken_rule_is_named_and_changes_nothing(store, payer, payee, amount, error, message):
    before = balances(store)
    with pytest.raises(error, match=message):
        transfer(store.factory, Account, TransferRequest(payer, payee, D(amount)), policy=FAST)
    assert balances(store) == before and store.tables["ledger"] == {}


def test_a_conflict_is_retried_and_applied_once(store):
    store.fail_next = [(TransactionConflict("OC000"), False)] * 2
    commits = store.commits
    result = transfer(store.factory, Account, TransferRequest(1, 2, D(10)), policy=FAST)
    assert result.attempts == 3 and store.commits == commits + 1
    assert balances(store)[1] == D(90) and len(store.tables["ledger"]) == 1


def test_ch04_reports_the_conflict_and_applies_nothing(store):
    store.fail_next = [(TransactionConflict("OC000"), False)]
    with pytest.raises(TransactionConflict):
        transfer(store.factory, Account, TransferRequest(1, 2, D(10)), policy=NO_RETRY)
    assert balances(store)[1] == D(100) and store.tables["ledger"] == {}


def test_a_dead_connection_costs_no_failed_request_even_in_ch04(store):
    store.fail_next = [(DatabaseUnavailable("connection lost"), False)]
    result = transfer(store.factory, Account, TransferRequest(1, 2, D(10)), policy=NO_RETRY)
    assert result.attempts == 2 and balances(store)[1] == D(90)


def test_the_same_transfer_id_again_returns_the_first_outcome_and_moves_nothing(store):
    request = TransferRequest(1, 2, D(10))
    first = transfer(store.factory, Account, request, policy=FAST)
    transfer(store.factory, Account, TransferRequest(1, 2, D(5)), policy=FAST)  # in between
    again = transfer(store.factory, Account, request, policy=FAST)
    assert (again.payer_balance, again.replayed) == (first.payer_balance, True) == (D(90), True)
    assert balances(store)[1] == D(85) and len(store.tables["ledger"]) == 2


def test_another_request_under_a_used_transfer_id_is_refused(store):
    request = TransferRequest(1, 2, D(10))
    transfer(store.factory, Account, request, policy=FAST)
    before = balances(store)
    for other in (TransferRequest(1, 2, D(11), request.transfer_id),
                  TransferRequest(1, 3, D(10), request.transfer_id),
                  TransferRequest(3, 2, D(10), request.transfer_id)):
        with pytest.raises(TransferIdReused, match=str(request.transfer_id)):
            transfer(store.factory, Account, other, policy=FAST)
    assert balances(store) == before


@pytest.mark.parametrize("committed", [True, False])
def test_a_lost_commit_reply_is_settled_by_the_ledger(store, committed):
    """It committed: its outcome, not a second transfer. It did not: applied once now."""
    store.fail_next = [(CommitOutcomeUnknown("reply lost"), committed)]
    request = TransferRequest(1, 2, D(10))
    result = transfer(store.factory, Account, request, policy=NO_RETRY)
    assert result.payer_balance == D(90) and not result.replayed
    assert balances(store)[1] == D(90)
    assert list(store.tables["ledger"]) == [request.transfer_id]


def test_a_lost_commit_reply_that_cannot_be_settled_is_named(store):
    store.fail_next = [(CommitOutcomeUnknown("reply lost"), True)]
    store.fail_reads = 100  # the ledger cannot be read either
    request = TransferRequest(1, 2, D(10))
    with pytest.raises(TransferOutcomeUnknown, match=str(request.transfer_id)) as info:
        transfer(store.factory, Account, request, policy=FAST)
    assert info.value.applied is None and info.value.retryable
    # Sending it again once the database answers: the first outcome, no second transfer.
    store.fail_reads = 0
    again = transfer(store.factory, Account, request, policy=FAST)
    assert (again.payer_balance, again.replayed) == (D(90), True)
    assert balances(store)[1] == D(90)


def test_uuid_accounts_follow_the_same_rules(store):
    a, b = EXAMPLE_UUIDS
    result = transfer(store.factory, UuidAccount, TransferRequest(a, b, D(1)), policy=FAST)
    assert result.payer_balance == D(99)
    assert balances(store, UuidAccount) == {a: D(99), b: D(101)}


def test_balance_lookup(store):
    assert get_balance(store.factory, 3, policy=FAST) == D(100)
    with pytest.raises(AccountNotFound, match="^Account 42 not found$"):
        get_balance(store.factory, 42, policy=FAST)


def test_a_replay_returns_its_first_outcome_even_when_the_payer_could_not_pay_now(store):
    request = TransferRequest(1, 2, D(60))
    first = transfer(store.factory, Account, request, policy=FAST)  # 100 -> 40
    again = transfer(store.factory, Account, request, policy=FAST)  # 40 < 60 now
    assert (again.payer_balance, again.replayed) == (first.payer_balance, True) == (D(40), True)
    assert balances(store)[1] == D(40)
