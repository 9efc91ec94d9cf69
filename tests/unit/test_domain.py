"""The domain's rules, with no database: plain objects in, named errors out."""

import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bank.domain.errors import AccountNotFound, InsufficientFunds, InvalidRequest
from bank.domain.model import (
    Account,
    Transfer,
    TransferRequest,
    UuidAccount,
    balances_after,
    can_pay,
)

D = Decimal


def test_a_transfer_moves_the_amount_from_the_payer_to_the_payee():
    assert balances_after(D("100"), D("5"), D("30")) == (D("70"), D("35"))


def test_the_whole_balance_can_be_spent():
    assert balances_after(D("12.5"), D(0), D("12.5")) == (D(0), D("12.5"))


def test_rules_in_the_originals_order_and_words():
    with pytest.raises(AccountNotFound, match="^Payer account not found$"):
        balances_after(None, None, D(1))  # payer first, even with the payee missing too
    with pytest.raises(InsufficientFunds, match=r"^Insufficient balance: -4\.75$"):
        balances_after(D("5.25"), None, D(10))  # then the balance, before the payee
    with pytest.raises(AccountNotFound, match="^Payee account not found$"):
        balances_after(D(100), None, D(10))


@given(payer=st.none() | st.decimals(min_value=0, max_value=10**6, places=6),
       payee=st.none() | st.decimals(min_value=0, max_value=10**6, places=6),
       amount=st.decimals(min_value=D("0.000001"), max_value=10**6, places=6))
def test_a_transfer_keeps_the_money_or_refuses(payer, payee, amount):
    try:
        after = balances_after(payer, payee, amount)
    except (AccountNotFound, InsufficientFunds):
        assert payer is None or payee is None or not can_pay(payer, amount)
    else:
        assert sum(after) == payer + payee and min(after) >= 0


@given(balance=st.decimals(min_value=0, max_value=10**6, places=6),
       amount=st.decimals(min_value=D("0.000001"), max_value=10**6, places=6))
def test_can_pay_is_one_rule_for_numbers(balance, amount):
    assert can_pay(balance, amount) == (balance - amount >= 0)
    assert Account(1, balance).can_pay(amount) == can_pay(balance, amount)


def test_can_pay_is_also_a_sql_condition():
    """The same function, given a column, builds the SQL the repository runs."""
    from sqlalchemy import column

    condition = can_pay(column("balance"), 5)
    assert str(condition) == "balance >= :balance_1"


@pytest.mark.parametrize("amount, message", [
    (D(0), "positive"), (D(-1), "positive"), (D("1.0000001"), "decimal places"),
    (D(10) ** 12, "less than"), (D("NaN"), "finite"), (D("Infinity"), "finite"),
])
def test_a_request_refuses_bad_amounts(amount, message):
    with pytest.raises(InvalidRequest, match=message):
        TransferRequest(1, 2, amount)


def test_a_request_refuses_the_same_account_twice():
    with pytest.raises(InvalidRequest, match="^Payer and payee must be different accounts$"):
        TransferRequest(7, 7, D(1))
    same = uuid.uuid4()
    with pytest.raises(InvalidRequest):
        TransferRequest(same, uuid.UUID(str(same)), D(1))


def test_a_request_gets_a_fresh_transfer_id_unless_given_one():
    given_id = uuid.uuid4()
    assert TransferRequest(1, 2, D(1)).transfer_id != TransferRequest(1, 2, D(1)).transfer_id
    assert TransferRequest(1, 2, D(1), given_id).transfer_id == given_id


def test_a_ledger_entry_matches_only_the_same_request():
    request = TransferRequest(1, 2, D("10"))
    entry = Transfer.record(request, D("90"))
    assert (entry.id, entry.payer_id, entry.payee_id, entry.payer_balance) == (
        request.transfer_id, "1", "2", D("90"))
    assert entry.matches(TransferRequest(1, 2, D("10.000000"), request.transfer_id))
    assert not entry.matches(TransferRequest(1, 3, D("10"), request.transfer_id))
    assert not entry.matches(TransferRequest(1, 2, D("11"), request.transfer_id))
    u = uuid.uuid4()
    assert not Transfer.record(TransferRequest(u, uuid.uuid4(), D(1)), D(0)).matches(
        TransferRequest(1, 2, D(1)))
    assert UuidAccount(u, D(1)).can_pay(D(1))
