"""Properties over any sequence of valid and invalid requests (hypothesis, real database)."""

import uuid
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
from bank.domain.errors import AccountNotFound, BankError, InsufficientFunds, InvalidRequest
from bank.domain.model import Account, UuidAccount, balances_after
from bank.domain.requests import parse_amount
from bank.handlers import ch05, ch06
from tests.conftest import balances
from tests.integration.test_handlers import fingerprint

ACCOUNTS = 4
slot = st.integers(min_value=0, max_value=ACCOUNTS)  # ACCOUNTS: an account that doesn't exist
amount = st.one_of(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("80"), places=2).map(str),
    st.integers(min_value=-5, max_value=200),
    st.sampled_from(["0", "-1", "NaN", "1e400", "0.0000001", "", "ten", True, None, 1.5]),
)
request = st.fixed_dictionaries({"payer": slot, "payee": slot, "amount": amount})

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(requests=st.lists(request, min_size=1, max_size=12))
def test_any_sequence_conserves_money_and_never_overdraws(make_accounts, requests):
    ids = make_accounts(ACCOUNTS, balance=50) + [2_100_000_000]  # the last one does not exist
    model = {i: Decimal(50) for i in ids[:ACCOUNTS]}  # what the balances must be
    for r in requests:
        payer, payee = ids[r["payer"]], ids[r["payee"]]
        event = {"payer_id": payer, "payee_id": payee, "amount": r["amount"]}
        expected = _expected_outcome(model, payer, payee, r["amount"])
        try:
            ch05.handler(event)
            outcome = None
        except BankError as exc:
            outcome = type(exc).__name__
        assert outcome == expected, (event, model)
        if outcome is None:
            amount = parse_amount({"amount": r["amount"]})
            model[payer] -= amount
            model[payee] += amount
        now = balances(_engine(), ids)
        assert now == model
        assert sum(now.values()) == Decimal(50 * ACCOUNTS)
        assert all(b >= 0 for b in now.values())


money = st.decimals(min_value=0, max_value=Decimal("1e9"), places=6)


@SETTINGS
@given(kind=st.sampled_from([Account, UuidAccount]), payer=st.none() | money,
       payee=st.none() | money,
       amount=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1e9"), places=6))
def test_the_sql_move_applies_the_domains_rule(make_accounts, make_uuid_accounts, kind, payer,
                                              payee, amount):
    """The one-statement move and ``balances_after`` agree: the same balances after, or
    nothing moved where the rule refuses (None: that account does not exist)."""
    make = make_accounts if kind is Account else make_uuid_accounts
    absent = 2_100_000_001 if kind is Account else str(uuid.uuid4())
    payer_id = make(1, balance=payer)[0] if payer is not None else absent
    payee_id = make(1, balance=payee)[0] if payee is not None else absent
    if kind is UuidAccount:
        payer_id, payee_id = uuid.UUID(str(payer_id)), uuid.UUID(str(payee_id))
    if payer_id == payee_id:  # both missing: the same absent id
        payee_id = 2_100_000_002 if kind is Account else uuid.uuid4()
    with SqlAlchemyUnitOfWork() as uow:
        moved = uow.accounts(kind).move(payer_id, payee_id, amount)
        uow.commit()
    table = "accounts" if kind is Account else "accounts2"
    key = (lambda i: i) if kind is Account else str
    after = balances(_engine(), [payer_id, payee_id], table)
    try:
        expected = balances_after(payer, payee, amount)
    except (AccountNotFound, InsufficientFunds):
        assert moved is None
        assert after == {key(i): b for i, b in ((payer_id, payer), (payee_id, payee))
                         if b is not None}
    else:
        assert moved == expected[0]
        assert after == {key(payer_id): expected[0], key(payee_id): expected[1]}


def _expected_outcome(model, payer, payee, raw_amount):
    """The original's checks, in its order, against the model."""
    try:
        amount = parse_amount({"amount": raw_amount})
    except InvalidRequest:
        return "InvalidRequest"
    if payer == payee:
        return "InvalidRequest"
    if payer not in model:
        return "AccountNotFound"
    if model[payer] < amount:
        return "InsufficientFunds"
    if payee not in model:
        return "AccountNotFound"
    return None


malformed = st.one_of(
    st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.sampled_from(["payer_id", "payee_id", "amount", "x"]),
                    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                              st.text(max_size=40), st.lists(st.integers(), max_size=2)),
                    max_size=4),
)


@SETTINGS
@given(event=malformed)
def test_malformed_events_yield_invalid_request_and_change_nothing(engine, event):
    # Anything this strategy makes is invalid for ch06: no dict of it holds two valid UUIDs.
    before = fingerprint(engine)
    try:
        ch06.handler(event)
    except BankError as exc:
        assert type(exc).__name__ == "InvalidRequest", exc
    else:
        raise AssertionError(f"accepted {event!r}")
    assert fingerprint(engine) == before


@SETTINGS
@given(payer=st.uuids(), amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10"),
                                            places=2))
def test_unknown_uuid_accounts_change_nothing(engine, payer, amount):
    before = fingerprint(engine)
    try:
        ch06.handler({"payer_id": str(payer), "payee_id": str(uuid.uuid4()), "amount": str(amount)})
    except BankError as exc:
        assert type(exc).__name__ == "AccountNotFound"
    else:
        raise AssertionError("a transfer between unknown accounts succeeded")
    assert fingerprint(engine) == before


def _engine():
    from bank.adapters.database import get_engine

    return get_engine()
