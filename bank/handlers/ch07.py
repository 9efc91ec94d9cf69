"""ch07: the query-optimization lab. ``{"operation": "setup" | "query" | "optimize" |
"query_optimized"}``, with ``rows`` for setup and the four filters for the queries."""

from bank import querylab
from bank.database import get_engine
from bank.validation import require_object


def handler(event, context=None):
    event = require_object(event)
    operation = event.get("operation")
    if operation == "setup":
        rows = querylab.parse_rows(event)
        return querylab.setup(get_engine(), rows)
    if operation == "optimize":
        return querylab.optimize(get_engine())
    if operation in ("query", "query_optimized"):
        filters = querylab.parse_filters(event)
        return querylab.run_query(get_engine(), filters, operation)
    raise querylab.UnknownOperation(f"Unknown operation: {operation}")
