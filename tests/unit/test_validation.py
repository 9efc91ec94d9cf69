"""Event parsing: every refusal is an InvalidRequest that names the field."""

import math
import re
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bank.domain.errors import InvalidRequest
from bank.domain.requests import parse_amount, parse_transfer

U1, U2 = "123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-426614174001"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("10", "10"),
        (10, "10"),
        (10.5, "10.5"),
        ("0.000001", "0.000001"),
        (" 7.25 ", "7.25"),
        ("999999999999.999999", "999999999999.999999"),
        ("\t12.500000\n", "12.5"),
        ("007", "7"),
        (0.1, "0.1"),
        (1e-05, "0.00001"),
    ],
)
def test_valid_amounts(raw, expected):
    assert parse_amount({"amount": raw}) == Decimal(expected)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (True, "decimal string or a number"),
        (None, "missing"),
        ([1], "decimal string"),
        ({"v": 1}, "decimal string"),
        ("NaN", "not a plain decimal"),
        ("Infinity", "not a plain decimal"),
        (math.inf, "finite"),
        (math.nan, "finite"),
        ("-1", "positive"),
        (0, "positive"),
        ("0.0", "positive"),
        ("0.0000001", "decimal places"),
        ("1.500000000", "decimal places"),
        ("1e12", "not a plain decimal"),
        (1e12, "less than"),
        ("1000000000000", "less than"),
        ("abc", "not a plain decimal"),
        ("", "not a plain decimal"),
        ("1" * 50, "not a plain decimal"),
        (-0.5, "positive"),
        # Only ASCII digits in their canonical forms (issue: "１", "٣" and "1_0" went through).
        ("１", "not a plain decimal"),
        ("٣", "not a plain decimal"),
        ("1_0", "not a plain decimal"),
        ("+5", "not a plain decimal"),
        (".5", "not a plain decimal"),
        ("5.", "not a plain decimal"),
        ("1,5", "not a plain decimal"),
        ("1 0", "not a plain decimal"),
        ("0x10", "not a plain decimal"),
        ("\u00a010", "not a plain decimal"),  # a no-break space is not surrounding whitespace
    ],
)
def test_invalid_amounts(raw, fragment):
    with pytest.raises(InvalidRequest, match=fragment) as info:
        parse_amount({"amount": raw})
    assert "amount" in str(info.value)


def test_missing_amount_names_the_field():
    with pytest.raises(InvalidRequest, match="missing field 'amount'"):
        parse_transfer({"payer_id": 1, "payee_id": 2})


@pytest.mark.parametrize(
    "event, fragment",
    [
        ({"payer_id": "1", "payee_id": 2, "amount": "1"}, "'payer_id' must be an integer"),
        ({"payer_id": 1, "payee_id": True, "amount": "1"}, "'payee_id' must be an integer"),
        ({"payer_id": 1.5, "payee_id": 2, "amount": "1"}, "'payer_id' must be an integer"),
        ({"payer_id": 0, "payee_id": 2, "amount": "1"}, "between 1 and"),
        ({"payer_id": 2**31, "payee_id": 2, "amount": "1"}, "between 1 and"),
        ({"payee_id": 2, "amount": "1"}, "missing field 'payer_id'"),
        (
            {"payer_id": 3, "payee_id": 3, "amount": "1"},
            "Payer and payee must be different accounts",
        ),
        ([1, 2], "JSON object"),
        ("payer", "JSON object"),
        (None, "JSON object"),
    ],
)
def test_invalid_integer_transfers(event, fragment):
    with pytest.raises(InvalidRequest, match=fragment):
        parse_transfer(event)


@pytest.mark.parametrize(
    "event, fragment",
    [
        ({"payer_id": "nope", "payee_id": U2, "amount": "1"}, "'payer_id' is not a UUID"),
        ({"payer_id": U1, "payee_id": 5, "amount": "1"}, "'payee_id' must be a UUID string"),
        ({"payer_id": U1, "payee_id": U1.upper(), "amount": "1"}, "must be different"),
        # Only the canonical 8-4-4-4-12 form, any case (issue: these were accepted).
        ({"payer_id": f"urn:uuid:{U1}", "payee_id": U2, "amount": "1"}, "8-4-4-4-12"),
        ({"payer_id": "{" + U1 + "}", "payee_id": U2, "amount": "1"}, "8-4-4-4-12"),
        ({"payer_id": U1.replace("-", ""), "payee_id": U2, "amount": "1"}, "8-4-4-4-12"),
        ({"payer_id": "123e4567e-89b-12d3-a456-426614174000", "payee_id": U2, "amount": "1"},
         "8-4-4-4-12"),
        ({"payer_id": U1, "payee_id": U2, "amount": "1", "transfer_id": "x"}, "'transfer_id'"),
        ({"payer_id": U1, "payee_id": U2, "amount": "1", "transfer_id": 7}, "'transfer_id'"),
    ],
)
def test_invalid_uuid_transfers(event, fragment):
    with pytest.raises(InvalidRequest, match=fragment):
        parse_transfer(event, uuid_ids=True)


def test_uuid_transfer_parses():
    req = parse_transfer({"payer_id": U1, "payee_id": U2, "amount": "2.5"}, uuid_ids=True)
    assert (req.payer_id, req.payee_id, req.amount) == (
        uuid.UUID(U1),
        uuid.UUID(U2),
        Decimal("2.5"),
    )


def test_surrounding_whitespace_is_treated_alike_for_ids_and_amounts():
    req = parse_transfer({"payer_id": f" {U1.upper()}\n", "payee_id": U2, "amount": " 2.5\t",
                          "transfer_id": f"\t{U2} "}, uuid_ids=True)
    assert (req.payer_id, req.amount, req.transfer_id) == (
        uuid.UUID(U1), Decimal("2.5"), uuid.UUID(U2))


def test_transfer_id_is_made_when_absent_and_kept_when_given():
    first = parse_transfer({"payer_id": 1, "payee_id": 2, "amount": "1"})
    second = parse_transfer({"payer_id": 1, "payee_id": 2, "amount": "1"})
    assert first.transfer_id != second.transfer_id
    given_id = parse_transfer({"payer_id": 1, "payee_id": 2, "amount": "1", "transfer_id": U1})
    assert given_id.transfer_id == uuid.UUID(U1)


@given(
    st.decimals(
        min_value=Decimal("0.000001"),
        max_value=Decimal("999999999999.999999"),
        places=6,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_any_in_range_decimal_string_round_trips(value):
    assert parse_amount({"amount": str(value)}) == value


CANONICAL = re.compile(r"[0-9]+(\.[0-9]{1,6})?", re.ASCII)


@given(st.text())
def test_a_string_is_accepted_only_in_its_canonical_form(text):
    try:
        amount = parse_amount({"amount": text})
    except InvalidRequest:
        assert not CANONICAL.fullmatch(text.strip(" \t\r\n")) or Decimal(text) == 0 or (
            Decimal(text) >= Decimal(10) ** 12)
        return
    assert CANONICAL.fullmatch(text.strip(" \t\r\n"))
    assert amount == Decimal(text.strip(" \t\r\n"))


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.lists(st.integers()),
        st.dictionaries(st.text(), st.integers()),
        st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not (0 < f < 1e12)),
    )
)
def test_anything_else_is_refused_with_invalid_request(value):
    with pytest.raises(InvalidRequest):
        parse_amount({"amount": value})


def test_huge_amount_with_many_decimals_is_invalid_request_not_decimal_error():
    with pytest.raises(InvalidRequest, match="less than"):
        parse_amount({"amount": "123456789012345678901234.1234567"})
