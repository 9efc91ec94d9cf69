"""Parsing of Lambda events: every field checked, every refusal a named error.

No database work happens for an invalid event, and no SQL is ever built from input.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from bank.errors import InvalidRequest

MONEY_SCALE = 6
MONEY_LIMIT = Decimal(10) ** 12  # Numeric(18, 6): at most 12 digits before the point
INT4_MAX = 2**31 - 1


@dataclass(frozen=True)
class TransferRequest:
    payer_id: Any  # int (accounts) or uuid.UUID (accounts2)
    payee_id: Any
    amount: Decimal


def require_object(event: Any) -> dict:
    if not isinstance(event, dict):
        raise InvalidRequest(f"the event must be a JSON object, got {_kind(event)}")
    return event


def field(event: dict, name: str) -> Any:
    if name not in event or event[name] is None:
        raise InvalidRequest(f"missing field '{name}'")
    return event[name]


def _kind(value: Any) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "an array", dict: "an object", type(None): "null",
    }.get(type(value), type(value).__name__)


def parse_int_id(event: dict, name: str) -> int:
    value = field(event, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{name}' must be an integer account id, got {_kind(value)}")
    if not 1 <= value <= INT4_MAX:
        raise InvalidRequest(f"'{name}' must be between 1 and {INT4_MAX}, got {value}")
    return value


def parse_uuid_id(event: dict, name: str) -> uuid.UUID:
    value = field(event, name)
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a UUID string, got {_kind(value)}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidRequest(f"'{name}' is not a valid UUID: {value[:64]!r}") from None


def parse_amount(event: dict, name: str = "amount", allow_zero: bool = False) -> Decimal:
    value = field(event, name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequest(
            f"'{name}' must be a decimal string or a number, got {_kind(value)}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(f"'{name}' must be a finite number")
    text = str(value).strip() if not isinstance(value, float) else repr(value)
    if len(text) > 40:
        raise InvalidRequest(f"'{name}' is too long to be an amount")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InvalidRequest(f"'{name}' is not a decimal number: {text!r}") from None
    if not amount.is_finite():
        raise InvalidRequest(f"'{name}' must be a finite number, got {text!r}")
    if amount < 0 or (amount == 0 and not allow_zero):
        rule = "must not be negative" if allow_zero else "must be positive"
        raise InvalidRequest(f"'{name}' {rule}, got {text}")
    if amount >= MONEY_LIMIT:  # first: quantize() below needs a bounded number of digits
        raise InvalidRequest(f"'{name}' must be less than {MONEY_LIMIT:,}, got {text}")
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -MONEY_SCALE and amount != amount.quantize(Decimal(1).scaleb(-MONEY_SCALE)):
        raise InvalidRequest(f"'{name}' has more than {MONEY_SCALE} decimal places: {text}")
    return amount.quantize(Decimal(1).scaleb(-MONEY_SCALE))


def parse_transfer(event: Any, *, uuid_ids: bool = False) -> TransferRequest:
    event = require_object(event)
    parse_id = parse_uuid_id if uuid_ids else parse_int_id
    payer, payee = parse_id(event, "payer_id"), parse_id(event, "payee_id")
    amount = parse_amount(event)
    if payer == payee:
        raise InvalidRequest("Payer and payee must be different accounts")
    return TransferRequest(payer, payee, amount)
