"""ch07: the query-optimization lab. ``{"operation": "setup" | "query" | "optimize" |
"query_optimized"}``, with ``rows`` for setup and the four filters for the queries."""

from bank.adapters.database import get_engine
from bank.adapters.lab import LabDatabase
from bank.domain.errors import UnknownOperation
from bank.domain.requests import require_object
from bank.handlers.common import logged, retry_policy
from bank.services import querylab


@logged
def handler(event, context=None):
    event = require_object(event)
    operation = event.get("operation")
    if operation not in querylab.OPERATIONS:
        raise UnknownOperation(f"Unknown operation: {operation}")
    lab, policy = LabDatabase(get_engine()), retry_policy()
    if operation == "setup":
        return querylab.setup(lab, querylab.parse_rows(event), policy)
    if operation == "optimize":
        return querylab.optimize(lab, policy)
    return querylab.run_query(lab, querylab.parse_filters(event), policy, operation)
