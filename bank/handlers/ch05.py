"""ch05: ch04 plus automatic retry of optimistic-concurrency conflicts (SQLSTATE 40001)."""

from bank.database import get_engine
from bank.handlers.common import deadline_from, transfer_response
from bank.occ import RetryPolicy
from bank.settings import get_settings
from bank.transfers import ACCOUNTS, transfer_with_retry
from bank.validation import parse_transfer


def handler(event, context=None):
    request = parse_transfer(event)
    policy = RetryPolicy.from_settings(get_settings())
    result = transfer_with_retry(get_engine(), ACCOUNTS, request, policy, deadline_from(context))
    return transfer_response(result, with_attempts=True)
