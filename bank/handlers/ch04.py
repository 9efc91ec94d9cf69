"""ch04: a transfer in one transaction over a reused connection, without retry.

Under contention a conflict surfaces as ``TransactionConflict``: the point of ch05.
"""

from bank.database import get_engine
from bank.handlers.common import transfer_response
from bank.transfers import ACCOUNTS, transfer
from bank.validation import parse_transfer


def handler(event, context=None):
    request = parse_transfer(event)
    return transfer_response(transfer(get_engine(), ACCOUNTS, request), with_attempts=False)
