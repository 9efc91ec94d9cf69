"""ch06: ch05 on ``accounts2``, whose keys are UUIDs (strings in the event)."""

from bank.domain.model import UuidAccount
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
    request = parse_transfer(event, uuid_ids=True)
    result = transfer(UnitOfWork, UuidAccount, request, policy=retry_policy(),
                      deadline=deadline_from(context))
    return transfer_response(result, with_attempts=True)
