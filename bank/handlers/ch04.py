"""ch04: a transfer in one transaction over a reused connection, without retry.

Under contention a conflict surfaces as ``TransactionConflict``: the point of ch05.
(A pooled connection found dead is still replaced, and a lost COMMIT reply settled by
the ledger: those are not conflicts.)
"""

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
    result = transfer(UnitOfWork, Account, request, policy=retry_policy(retry_conflicts=False),
                      deadline=deadline_from(context))
    return transfer_response(result, with_attempts=False)
