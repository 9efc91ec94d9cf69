"""Every event file through its handler, on the real database."""

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from bank.handlers import ch01, ch03, ch04, ch05, ch06
from bank.kit.cli.invoke import LocalContext, resolve

EVENTS = Path(__file__).resolve().parents[2] / "events"
HANDLERS = {"ch01": ch01, "ch03": ch03, "ch04": ch04, "ch05": ch05, "ch06": ch06}

# file -> None for success, else the errorType the handler must raise.
EXPECTED = {
    "ch01.json": None,
    "ch03.json": None,
    "ch03-unknown-account.json": "AccountNotFound",
    "ch03-bad-id.json": "InvalidRequest",
    "ch04.json": None,
    "ch04-insufficient-balance.json": "InsufficientFunds",
    "ch04-unknown-payer.json": "AccountNotFound",
    "ch04-unknown-payee.json": "AccountNotFound",
    "ch04-same-account.json": "InvalidRequest",
    "ch05.json": None,
    "ch05-with-transfer-id.json": None,
    "ch05-negative-amount.json": "InvalidRequest",
    "ch05-too-many-decimals.json": "InvalidRequest",
    "ch05-nan-amount.json": "InvalidRequest",
    "ch05-missing-amount.json": "InvalidRequest",
    "ch05-string-id.json": "InvalidRequest",
    "ch06.json": None,
    "ch06-malformed-uuid.json": "InvalidRequest",
    "ch06-unknown-payee.json": "AccountNotFound",
    "ch06-absurd-amount.json": "InvalidRequest",
}
ERRORS = sorted(k for k, v in EXPECTED.items() if v)


def test_every_event_file_has_an_expectation():
    files = {p.name for p in EVENTS.glob("ch0[1-6]*.json")}
    assert files == set(EXPECTED)


def fingerprint(engine):
    """Every (id, balance) of both tables, as an order-free digest, then the totals.

    A sum of per-row hashes: any changed, added or removed row changes it (a transfer,
    which keeps the totals, included), at a fraction of the cost of sorting the tables.
    """
    digest = "sum(hashtextextended(id::text || ':' || balance::text, 0))"
    with engine.connect() as conn:
        return conn.execute(text(
            f"SELECT (SELECT {digest} FROM accounts), (SELECT {digest} FROM accounts2), "
            "       (SELECT sum(balance) FROM accounts), (SELECT sum(balance) FROM accounts2)"
        )).one()


def run_event(name):
    event = json.loads((EVENTS / name).read_text())
    fn = resolve(name.split("-")[0].removesuffix(".json"))
    module = HANDLERS[name[:4]]
    return module.handler(event, LocalContext(fn))


@pytest.mark.parametrize("name", ERRORS)
def test_error_scenarios_raise_the_named_error_and_change_nothing(seeded, name):
    before = fingerprint(seeded)
    with pytest.raises(Exception) as info:
        run_event(name)
    assert type(info.value).__name__ == EXPECTED[name]
    assert str(info.value)
    assert fingerprint(seeded) == before


def test_ch01_greets():
    assert run_event("ch01.json") == {"greeting": "hello reinvent"}


def test_ch03_reads_the_balance(seeded):
    with seeded.connect() as conn:
        expected = conn.execute(text("SELECT balance FROM accounts WHERE id = 1")).scalar_one()
    assert run_event("ch03.json") == {"balance": str(expected)}


@pytest.mark.parametrize("name, table", [("ch04.json", "accounts"), ("ch05.json", "accounts"),
                                         ("ch06.json", "accounts2")])
def test_transfer_events_move_the_money(seeded, name, table):
    event = json.loads((EVENTS / name).read_text())
    read = text(f"SELECT balance FROM {table} WHERE id = :id")  # table: a test constant

    def balance(account):
        with seeded.connect() as conn:
            return conn.execute(read, {"id": account}).scalar_one()

    payer, payee = balance(event["payer_id"]), balance(event["payee_id"])
    total = fingerprint(seeded)[2:]
    response = run_event(name)
    amount = Decimal(event["amount"])
    assert Decimal(response["payer_balance"]) == payer - amount == balance(event["payer_id"])
    assert balance(event["payee_id"]) == payee + amount
    assert fingerprint(seeded)[2:] == total
    assert response["transaction_time"].endswith("ms")
    assert ("attempts" in response) == (name != "ch04.json")
    if "attempts" in response:
        assert response["attempts"] == 1


def test_insufficient_balance_message_is_the_balance_it_would_leave(make_accounts):
    payer, payee = make_accounts(2, balance="5.25")
    with pytest.raises(Exception, match=r"^Insufficient balance: -4\.750000$"):
        ch04.handler({"payer_id": payer, "payee_id": payee, "amount": "10"})


def test_payer_checked_before_balance_before_payee(make_accounts):
    (payer,) = make_accounts(1, balance=1)
    # Unknown payer and unknown payee: the payer is reported.
    with pytest.raises(Exception, match="^Payer account not found$"):
        ch05.handler({"payer_id": 2_000_000_001, "payee_id": 2_000_000_002, "amount": "1"})
    # Insufficient balance and unknown payee: insufficient is reported (original order).
    with pytest.raises(Exception, match="^Insufficient balance"):
        ch05.handler({"payer_id": payer, "payee_id": 2_000_000_002, "amount": "2"})


def test_exact_balance_can_be_spent_to_zero(make_accounts):
    payer, payee = make_accounts(2, balance="12.5")
    assert ch05.handler({"payer_id": payer, "payee_id": payee, "amount": "12.5"})[
        "payer_balance"] == "0.000000"


def test_payee_balance_overflow_is_refused_without_change(engine, make_accounts):
    payer, payee = make_accounts(2, balance="999999999999")
    before = fingerprint(engine)
    with pytest.raises(Exception) as info:
        ch05.handler({"payer_id": payer, "payee_id": payee, "amount": "999999999999"})
    assert type(info.value).__name__ == "InvalidRequest"
    assert fingerprint(engine) == before
