"""ch01: hello Lambda. ``{"name": "reinvent"}`` -> ``{"greeting": "hello reinvent"}``."""

from bank.errors import InvalidRequest
from bank.validation import field, require_object


def handler(event, context=None):
    name = field(require_object(event), "name")
    if not isinstance(name, str):
        raise InvalidRequest(f"'name' must be a string, got {type(name).__name__}")
    return {"greeting": f"hello {name}"}
