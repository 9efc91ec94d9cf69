"""Parsing of Lambda events: every field checked, every refusal an ``InvalidRequest``.

Only canonical forms are accepted, in ASCII:

- an account id of ch03-ch05: a JSON integer from 1 to 2**31 - 1;
- a UUID (ch06 ids, ``transfer_id``): the 8-4-4-4-12 hexadecimal form, in any case;
- an amount: a JSON number, or a string of digits with an optional point and at most
  6 decimals (``"10"``, ``"0.01"``); no sign, exponent, ``_``, or non-ASCII digit.

Surrounding spaces, tabs and line breaks are ignored in every string, ids and amounts
alike. No database work happens for an invalid event, and no SQL is built from input.
"""

from __future__ import annotations

import math
import re
import uuid
from decimal import Decimal
from typing import Any

from bank.domain.errors import InvalidRequest
from bank.domain.model import MONEY_LIMIT, MONEY_QUANTUM, MONEY_SCALE, TransferRequest

INT4_MAX = 2**31 - 1
_WHITESPACE = " \t\r\n"
_AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", re.ASCII)


def require_object(event: Any) -> dict:
    if not isinstance(event, dict):
        raise InvalidRequest(f"the event must be a JSON object, got {kind(event)}")
    return event


def field(event: dict, name: str) -> Any:
    if name not in event or event[name] is None:
        raise InvalidRequest(f"missing field '{name}'")
    return event[name]


def kind(value: Any) -> str:
    """How a JSON value is named in error messages."""
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "an array", dict: "an object", type(None): "null",
    }.get(type(value), type(value).__name__)


def sendable(value: str, name: str) -> str:
    """``value``, if a database can take it: no NUL (PostgreSQL's text cannot hold one) and
    no lone surrogate (it has no UTF-8 form)."""
    if "\x00" in value:
        raise InvalidRequest(f"'{name}' must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"'{name}' is not valid Unicode text (a lone surrogate)") from None
    return value


def _shown(text: str) -> str:
    return repr(text[:64])


def parse_int_id(event: dict, name: str) -> int:
    value = field(event, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{name}' must be an integer account id, got {kind(value)}")
    if not 1 <= value <= INT4_MAX:
        raise InvalidRequest(f"'{name}' must be between 1 and {INT4_MAX}, got {value}")
    return value


def parse_uuid(value: Any, name: str) -> uuid.UUID:
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a UUID string, got {kind(value)}")
    text = value.strip(_WHITESPACE)
    if _UUID.fullmatch(text) is None:
        raise InvalidRequest(
            f"'{name}' is not a UUID in the 8-4-4-4-12 hexadecimal form: {_shown(value)}"
        )
    return uuid.UUID(text)


def parse_uuid_id(event: dict, name: str) -> uuid.UUID:
    return parse_uuid(field(event, name), name)


def parse_amount(event: dict, name: str = "amount", allow_zero: bool = False) -> Decimal:
    """A positive (or, with ``allow_zero``, non-negative) amount of money, numeric(18, 6)."""
    value = field(event, name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequest(f"'{name}' must be a decimal string or a number, got {kind(value)}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest(f"'{name}' must be a finite number")
        # The shortest decimal that reads back as the same float, without an exponent.
        text = format(Decimal(repr(value)), "f")
    else:
        text = str(value).strip(_WHITESPACE) if isinstance(value, str) else str(value)
    if len(text) > 40 or _AMOUNT.fullmatch(text) is None:
        raise InvalidRequest(
            f"'{name}' is not a plain decimal number (digits, an optional point and at most "
            f"{MONEY_SCALE} decimals): {_shown(text)}"
        )
    amount = Decimal(text)
    if amount < 0 or (amount == 0 and not allow_zero):
        rule = "must not be negative" if allow_zero else "must be positive"
        raise InvalidRequest(f"'{name}' {rule}, got {text}")
    if amount >= MONEY_LIMIT:
        raise InvalidRequest(f"'{name}' must be less than {MONEY_LIMIT:,}, got {text}")
    decimals = len(text.partition(".")[2])
    if decimals > MONEY_SCALE:
        raise InvalidRequest(f"'{name}' has more than {MONEY_SCALE} decimal places: {text}")
    return amount.quantize(MONEY_QUANTUM)


def parse_transfer(event: Any, *, uuid_ids: bool = False) -> TransferRequest:
    """ch04-ch06: ``payer_id``, ``payee_id``, ``amount`` and an optional ``transfer_id``."""
    event = require_object(event)
    parse_id = parse_uuid_id if uuid_ids else parse_int_id
    payer, payee = parse_id(event, "payer_id"), parse_id(event, "payee_id")
    amount = parse_amount(event)
    raw_id = event.get("transfer_id")
    if raw_id is None:
        return TransferRequest(payer, payee, amount)
    return TransferRequest(payer, payee, amount, parse_uuid(raw_id, "transfer_id"))
