"""The domain: accounts, the ledger entry of a transfer, and the rules of a transfer.

Plain Python classes: they know nothing of tables, sessions or connections, and the
unit tests exercise them with no database. ``bank.adapters.orm`` maps them onto the
tutorial's tables (``accounts``, ``accounts2``, ``accounts7``) and the ledger
(``transfers``).

The rules of a transfer are stated once, here:

- the request: a positive amount of at most 6 decimals, payer and payee different
  (``TransferRequest``);
- what it does to the two accounts (``balances_after``): the payer's balance goes down by
  the amount and the payee's up, if the payer exists, can afford it, and the payee exists;
  otherwise the first rule broken, in the original's order and with its words.

``can_pay`` is written with operators only, so the same function gives a ``bool`` for an
account in memory and a SQL condition for a balance column: the repository's
one-statement transfer (``WHERE ... AND can_pay(payer.balance, amount)``) applies this
rule, not a copy of it. ``tests/integration/test_properties.py`` checks that the SQL move and
``balances_after`` agree on random balances, amounts and missing accounts; the fake unit
of work of the service tests moves money with ``balances_after``, and the transfer
service explains a refusal with it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bank.domain.errors import AccountNotFound, InsufficientFunds, InvalidRequest

MONEY_SCALE = 6  # numeric(18, 6): what Aurora DSQL makes of a plain numeric
MONEY_LIMIT = Decimal(10) ** 12  # at most 12 digits before the point
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


def can_pay(balance: Any, amount: Any) -> Any:
    """A payer can afford ``amount`` if its balance stays at or above zero.

    On numbers, a ``bool``; on SQL expressions (a balance column), a SQL condition.
    """
    return balance >= amount


class _Account:
    """What every account has: an id and a balance that the rules below protect."""

    id: Any
    balance: Decimal

    def can_pay(self, amount: Decimal) -> bool:
        return can_pay(self.balance, amount)


@dataclass(eq=False)
class Account(_Account):
    """ch03-ch05: an account with an integer id (the tutorial's ``accounts``)."""

    id: int
    balance: Decimal


@dataclass(eq=False)
class UuidAccount(_Account):
    """ch06: an account with a UUID id (the tutorial's ``accounts2``).

    Random keys spread writes over DSQL's key space instead of a hot range.
    """

    id: uuid.UUID
    balance: Decimal


AccountKind = type[Account] | type[UuidAccount]


#: The lab's text columns and their lengths (``region_code`` is exactly that long).
LAB_TEXT_LENGTHS = {"account_type": 20, "region_code": 2, "status": 10, "metadata_key": 50}


@dataclass(eq=False)
class LabAccount:
    """ch07: the query-optimization lab's account (the tutorial's ``Account7``, ``accounts7``)."""

    id: int
    created_at: datetime
    account_type: str | None = None  # 'savings' or 'checking'
    region_code: str | None = None  # 'US', 'UK', 'DE', 'FR'
    status: str | None = None  # 'active' or 'inactive'
    balance: Decimal | None = None
    metadata_key: str | None = None  # 'account_tier_1' .. 'account_tier_5'
    metadata_value: str | None = None


@dataclass(frozen=True)
class TransferRequest:
    """A transfer asked for. Its ``transfer_id`` is the idempotency key: the same id sent
    again returns the first outcome and moves no money."""

    payer_id: Any  # int (Account) or uuid.UUID (UuidAccount)
    payee_id: Any
    amount: Decimal
    transfer_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise InvalidRequest("'amount' must be a finite decimal number")
        if self.amount <= 0:
            raise InvalidRequest(f"'amount' must be positive, got {self.amount}")
        if self.amount >= MONEY_LIMIT:
            raise InvalidRequest(f"'amount' must be less than {MONEY_LIMIT:,}, got {self.amount}")
        if self.amount != self.amount.quantize(MONEY_QUANTUM):
            raise InvalidRequest(
                f"'amount' has more than {MONEY_SCALE} decimal places: {self.amount}"
            )
        if self.payer_id == self.payee_id:
            raise InvalidRequest("Payer and payee must be different accounts")


@dataclass(eq=False)
class Transfer:
    """The ledger entry of one applied transfer, written in the same transaction as the
    balances it moved. ``id`` is the request's ``transfer_id``."""

    id: uuid.UUID
    payer_id: str  # the account ids as text: '42' or a UUID's canonical form
    payee_id: str
    amount: Decimal
    payer_balance: Decimal  # the payer's balance right after this transfer
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def record(cls, request: TransferRequest, payer_balance: Decimal) -> Transfer:
        return cls(request.transfer_id, str(request.payer_id), str(request.payee_id),
                   request.amount, payer_balance)

    def matches(self, request: TransferRequest) -> bool:
        """Is ``request`` this transfer sent again (rather than another one under its id)?"""
        return (self.payer_id, self.payee_id, self.amount) == (
            str(request.payer_id), str(request.payee_id), request.amount
        )


def balances_after(payer: Decimal | None, payee: Decimal | None,
                   amount: Decimal) -> tuple[Decimal, Decimal]:
    """What a transfer of ``amount`` does to the balances of its payer and payee (None: that
    account does not exist): their balances after it.

    Or the first rule it breaks, in the original's order and words: ``Payer account not
    found``, ``Insufficient balance: <payer's balance after>``, ``Payee account not found``.
    """
    if payer is None:
        raise AccountNotFound("Payer account not found")
    if not can_pay(payer, amount):
        raise InsufficientFunds(f"Insufficient balance: {payer - amount}")
    if payee is None:
        raise AccountNotFound("Payee account not found")
    return payer - amount, payee + amount


def balance_of(account: _Account | None) -> Decimal | None:
    return None if account is None else account.balance
