"""ch03: connect (IAM token on DSQL) and read a balance. ``{"id": 1}`` -> ``{"balance": "..."}``.

The original opened and closed a connection per call; here the engine (and its pool)
is built once per container and reused, as ch04 teaches.
"""

from bank.database import get_engine
from bank.occ import RetryPolicy
from bank.settings import get_settings
from bank.transfers import get_balance
from bank.validation import parse_int_id, require_object


def handler(event, context=None):
    account_id = parse_int_id(require_object(event), "id")
    policy = RetryPolicy.from_settings(get_settings())
    return {"balance": str(get_balance(get_engine(), account_id, policy))}
