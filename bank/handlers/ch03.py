"""ch03: connect (IAM token on DSQL) and read a balance. ``{"id": 1}`` -> ``{"balance": "..."}``.

The original opened and closed a connection per call; here the engine (and its pool)
is built once per container and reused, as ch04 teaches.
"""

from bank.domain.requests import parse_int_id, require_object
from bank.handlers.common import UnitOfWork, deadline_from, logged, retry_policy
from bank.services.transfers import get_balance


@logged
def handler(event, context=None):
    account_id = parse_int_id(require_object(event), "id")
    balance = get_balance(UnitOfWork, account_id, policy=retry_policy(),
                          deadline=deadline_from(context))
    return {"balance": str(balance)}
