"""ch05: ch04 plus automatic retry of optimistic-concurrency conflicts (SQLSTATE 40001)."""

from bank.domain.model import Account
from bank.domain.requests import parse_transfer
from bank.handlers.common import (
    UnitOfWork,
    deadline_from,
    logged,
    retry_policy,
    transfer_response,
)
from bank.services.transfers import transfer


@logged
def handler(event, context=None):
    request = parse_transfer(event)
    result = transfer(UnitOfWork, Account, request, policy=retry_policy(),
                      deadline=deadline_from(context))
    return transfer_response(result, with_attempts=True)
